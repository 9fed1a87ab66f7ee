"""Boards: a board name resolved to an amaranth-boards platform, with what the build needs to know.

``resolve_board(name)`` accepts

* ``ulx3s-85f`` (the primary board: Radiona ULX3S with an LFE5U-85F, 25 MHz oscillator, FTDI FT231X
  USB UART), also ``ulx3s-12f``, ``ulx3s-25f``, ``ulx3s-45f``;
* ``icebreaker`` (1BitSquared iCEBreaker: iCE40UP5K-SG48, 12 MHz oscillator, FTDI FT2232H whose
  channel B is the UART);
* ``module:Class``, any amaranth-boards (or own) platform class of the ECP5 or iCE40 family, e.g.
  ``amaranth_boards.icestick:ICEStickPlatform``. Other families are refused:
  this machine has no vendor tools, only yosys and nextpnr for ECP5 and iCE40.

and returns a :class:`Board`: the platform class, the family, the device (its resources from
:mod:`eqfpga.boards.devices`), the oscillator, the default target clock and baud rate, and the UART and LED resources.

Default baud rate: 3,000,000 on both boards. The FT231X's top rate is 3 Mbaud (48 MHz / 16, exact);
the FT2232H reaches 12 Mbaud, and 3 Mbaud is exact on it too (12 MHz / 4), so one host setting
serves both. The default target clocks: the ULX3S runs the core at 100 MHz (its UART divisor is
not exact, within the 2.5% a UART tolerates); the iCEBreaker's 24 MHz is a multiple of 3 MHz:
ULX3S 100 MHz (divisor 33, +1.0% baud error), iCEBreaker 24 MHz (divisor 8).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .devices import DEVICES, Device


class UnsupportedBoard(ValueError):
    """An unknown board name, or a platform this flow cannot build for."""


@dataclass(frozen=True)
class Board:
    name: str                      # as given (or the canonical short name)
    platform_cls: type             # the amaranth-boards platform class
    family: str                    # "ecp5" or "ice40"
    device: str                    # e.g. "LFE5U-85F", "iCE40UP5K"
    package: str
    resources: dict                # Device.resources(): ECP5 LUT4/TRELLIS_FF/MULT18X18D/DP16KD; iCE40 LC/EBR/DSP/SPRAM/PLL
    osc_resource: str              # the oscillator's resource name (platform.default_clk)
    osc_hz: float                  # its frequency
    default_clock_hz: float        # default target of the PLL
    default_baud: int
    uart: tuple = ("uart", 0)      # (resource name, number)
    leds: tuple = ()               # ((name, number), ...): status LEDs, in order of LED_ROLES
    extra_resources: str | None = None   # attribute of the platform class to add (iCEBreaker's snap-off PMOD)
    usb_uart: str = ""             # the USB UART chip on the board
    program: str = ""              # how to load a bitstream (printed in the report)
    notes: tuple = field(default_factory=tuple)

    @property
    def part(self) -> Device:
        """The device's entry in the device table."""
        return DEVICES[self.device]

    def platform(self):
        """A fresh platform instance (amaranth platforms can prepare only one design each)."""
        p = self.platform_cls()
        if self.extra_resources:
            p.add_resources(getattr(p, self.extra_resources))
        return p


# What each status LED shows (the first len(board.leds) of these are wired).
LED_ROLES = ("heartbeat", "error", "busy", "rx activity", "idle", "PLL locked", "in reset", "tx activity")

_KNOWN = {
    # name: (module, class, default clock, baud, LEDs, extra resources, usb uart, program command)
    **{f"ulx3s-{s}": ("amaranth_boards.ulx3s", f"ULX3S_{s.upper()}_Platform", 100e6, 3_000_000,
                      tuple(("led", i) for i in range(8)), None, "FTDI FT231X (up to 3 Mbaud)",
                      "openFPGALoader -b ulx3s {bit}   (SRAM; add -f to write the flash)")
       for s in ("12f", "25f", "45f", "85f")},
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform", 24e6, 3_000_000,
                   # on-board LEDs (green, red) then the snap-off PMOD's five (if it is still attached)
                   (("led_g", 0), ("led_r", 0), ("led_g", 1), ("led_r", 1), ("led_g", 2), ("led_g", 3),
                    ("led_g", 4)),
                   "break_off_pmod", "FTDI FT2232H channel B (up to 12 Mbaud)",
                   "iceprog {bit}   (writes the SPI flash; iceprog -S {bit} loads SRAM), or "
                   "openFPGALoader -b ice40_generic {bit}"),
}
BOARD_NAMES = tuple(_KNOWN)


def _family_of(cls) -> str:
    """"ecp5", "ice40", or a description of another family (vendor platform class and device)."""
    from amaranth.vendor import LatticeICE40Platform, LatticePlatform
    dev = str(getattr(cls, "device", "?"))
    if isinstance(cls, type) and issubclass(cls, LatticeICE40Platform):
        return "ice40"
    if isinstance(cls, type) and issubclass(cls, LatticePlatform) and dev.startswith("LFE5U"):
        return "ecp5"
    vendor = next((b.__name__ for b in getattr(cls, "__mro__", ())
                   if b.__module__.startswith("amaranth.vendor")), "non-Lattice")
    return f"{vendor} ({dev})"


def resolve_board(name: str) -> Board:
    """The :class:`Board` for a name (see the module docstring); UnsupportedBoard names what is wrong."""
    if not isinstance(name, str) or not name:
        raise UnsupportedBoard(f"board must be a name such as {', '.join(BOARD_NAMES)} or module:Class, not {name!r}")
    key = name.lower()
    if key in _KNOWN:
        mod, clsname, clk, baud, leds, extra, usb, prog = _KNOWN[key]
        cls = getattr(importlib.import_module(mod), clsname)
        return _board(key, cls, clk, baud, leds, extra, usb, prog)
    if ":" not in name:
        raise UnsupportedBoard(f"unknown board {name!r}: known boards are {', '.join(BOARD_NAMES)}; any other "
                         f"ECP5 or iCE40 platform can be given as module:Class "
                         f"(e.g. amaranth_boards.icestick:ICEStickPlatform)")
    mod, _, clsname = name.partition(":")
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise UnsupportedBoard(f"board {name!r}: cannot import module {mod!r} ({e})") from None
    cls = getattr(module, clsname, None)
    if not isinstance(cls, type):
        raise UnsupportedBoard(f"board {name!r}: module {mod!r} has no platform class {clsname!r}")
    fam = _family_of(cls)
    if fam not in ("ecp5", "ice40"):
        raise UnsupportedBoard(f"board {name!r} is a {fam} platform: only ECP5 "
                         f"and iCE40 boards can be built here (yosys + nextpnr; no vendor tools on this machine)")
    leds = [(n, i) for (n, i) in sorted(cls().resources) if n == "led"]
    clk = 48e6 if fam == "ecp5" else 24e6
    return _board(name, cls, clk, 3_000_000, tuple(leds[:8]), None, "", "openFPGALoader (see its board list)")


def _board(name, cls, clk, baud, leds, extra, usb, prog) -> Board:
    fam = _family_of(cls)
    device = cls.device
    if fam not in ("ecp5", "ice40"):
        raise UnsupportedBoard(f"board {name!r} is a {fam} platform: only ECP5 and iCE40 boards can be built here")
    if device not in DEVICES:
        raise UnsupportedBoard(f"board {name!r}: {fam} device {device!r} has no resource table here (known: "
                               f"{', '.join(d for d, v in DEVICES.items() if v.family == fam)})")
    res = DEVICES[device].resources()
    p = cls()
    osc = p.default_clk
    if osc is None or osc not in {n for (n, _) in p.resources}:
        raise UnsupportedBoard(f"board {name!r}: platform has no oscillator resource (default_clk = {osc!r})")
    osc_hz = p.lookup(osc, 0).clock.frequency
    if ("uart", 0) not in p.resources:
        raise UnsupportedBoard(f"board {name!r}: platform has no uart resource for the serial link")
    return Board(name=name, platform_cls=cls, family=fam, device=device, package=cls.package,
                 resources=res, osc_resource=osc, osc_hz=float(osc_hz), default_clock_hz=float(clk),
                 default_baud=int(baud), leds=tuple(leds), extra_resources=extra, usb_uart=usb,
                 program=prog)
