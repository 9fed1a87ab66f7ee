"""The two tops the build places on a device: the board top, and the core alone behind a serial wrapper.

**The board top** (``BOARD_TOP``): oscillator -> PLL -> reset synchroniser -> the serial-linked
core, status LEDs.

``BoardTop(cfg, board, clock_hz=..., baud=...)`` is an Elaboratable for an amaranth-boards platform
(``eqfpga.boards.platforms``):

* the oscillator (``board.osc_resource``) feeds a PLL that makes the target clock: ECP5 ``EHXPLLL``
  (dividers as ``ecppll`` computes them, :func:`ecp5_pll`), iCE40 ``SB_PLL40_PAD`` (as ``icepll``,
  :func:`ice40_pll`); when the target equals the oscillator frequency the oscillator drives the
  clock directly. ``top.clock_hz`` is the frequency achieved, which is what the UART divisor and
  the core's ``clk_hz`` are computed from;
* a reset synchroniser holds the ``sync`` domain in reset until the PLL has locked and for the
  core's drain (``Plan.drain`` + 2 cycles) after: the lanes and trees have no reset of their own
  and are flushed with NOPs meanwhile;
* the board's UART pins go to ``eqfpga.hdl.link.LinkedCore(cfg, divisor=round(clock_hz/baud),
  clk_hz=clock_hz)`` (``rx`` through a two-flip-flop synchroniser);
* the LEDs show, in this order as far as the board has LEDs (``platforms.LED_ROLES``): heartbeat,
  error, busy, rx activity, idle, PLL locked, in reset, tx activity.

**The core alone** (``WRAPPER_TOP``, ``eqfpga build --core-only``): the core's top has hundreds of
port bits (counters, the access stream), far more than a package's pins. :class:`SerialWrapper`
feeds every core input from one shift register (``sin`` shifts in one bit a cycle) and loads every
core output into another (``load`` = 1 captures all outputs, ``load`` = 0 shifts them out on
``sout``). Every input bit stays controllable and every output bit observable, so yosys can remove
nothing: the weight, bias, state and pixel memories are all written and read back through the
``access`` stream, which keeps them (and their contents) alive. The wrapper costs about
``in_bits + out_bits`` flip-flops and ``out_bits`` LUTs (the load/shift multiplexers).
"""
from __future__ import annotations

import math

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, ResetSignal, Signal,
                          Value)
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from eqfpga.golden.config import load_config
from eqfpga.hdl.plan import Plan

from .platforms import LED_ROLES, Board, resolve_board

BOARD_TOP = "top"                        # the board design's top module (and its file names)
WRAPPER_TOP = "eqfpga_serial_core"       # the core behind SerialWrapper (core-only builds)


class PLLError(ValueError):
    """No PLL setting reaches the requested frequency."""


# ---- ECP5 EHXPLLL (limits and search of Project Trellis' ecppll) --------------------------------
ECP5_PLL = {"in_mhz": (8, 400), "out_mhz": (3.125, 400), "pfd_mhz": (3.125, 400), "vco_mhz": (400, 800),
            "refclk_div": (1, 128), "feedback_div": (1, 80), "output_div": (1, 128)}


def ecp5_pll(f_in_hz: float, f_out_hz: float) -> dict:
    """EHXPLLL dividers for ``f_out_hz`` from ``f_in_hz``, CLKOP fed back (ecppll's search).

    f_out = f_in * CLKFB_DIV / CLKI_DIV, f_vco = f_out * CLKOP_DIV in 400..800 MHz, f_pfd =
    f_in / CLKI_DIV in 3.125..400 MHz. Picks the smallest frequency error, then the VCO nearest
    600 MHz. Returns the dividers, the CLKOP phase (0 degrees: CLKOP_CPHASE = CLKOP_DIV - 1), the
    achieved frequency and its error.
    """
    fi, fo = f_in_hz / 1e6, f_out_hz / 1e6
    lo, hi = ECP5_PLL["in_mhz"]
    if not lo <= fi <= hi:
        raise PLLError(f"ECP5 PLL input {fi} MHz is outside {lo}..{hi} MHz")
    lo, hi = ECP5_PLL["out_mhz"]
    if not lo <= fo <= hi:
        raise PLLError(f"ECP5 PLL output {fo} MHz is outside {lo}..{hi} MHz")
    best = None
    for ri in range(ECP5_PLL["refclk_div"][0], ECP5_PLL["refclk_div"][1] + 1):
        pfd = fi / ri
        if not ECP5_PLL["pfd_mhz"][0] <= pfd <= ECP5_PLL["pfd_mhz"][1]:
            continue
        for fb in range(ECP5_PLL["feedback_div"][0], ECP5_PLL["feedback_div"][1] + 1):
            out = pfd * fb
            # the output divider only sets the VCO: the one nearest 600 MHz within range
            ods = [od for od in range(ECP5_PLL["output_div"][0], ECP5_PLL["output_div"][1] + 1)
                   if ECP5_PLL["vco_mhz"][0] <= out * od <= ECP5_PLL["vco_mhz"][1]]
            if not ods:
                continue
            od = min(ods, key=lambda d: abs(out * d - 600))
            key = (round(abs(out - fo), 9), abs(out * od - 600))
            if best is None or key < best[0]:
                best = (key, ri, fb, od, out)
    if best is None:
        raise PLLError(f"no ECP5 PLL setting makes {fo} MHz from {fi} MHz")
    _, ri, fb, od, out = best
    return {"primitive": "EHXPLLL", "CLKI_DIV": ri, "CLKFB_DIV": fb, "CLKOP_DIV": od,
            "CLKOP_CPHASE": od - 1, "CLKOP_FPHASE": 0, "f_in_hz": f_in_hz, "f_pfd_hz": f_in_hz / ri,
            "f_vco_hz": out * od * 1e6, "f_out_hz": out * 1e6,
            "error_ppm": round((out - fo) / fo * 1e6, 1)}


# ---- iCE40 SB_PLL40 (limits and search of Project IceStorm's icepll, simple feedback) ------------
ICE40_PLL = {"in_mhz": (10, 133), "out_mhz": (16, 275), "pfd_mhz": (10, 133), "vco_mhz": (533, 1066)}


def ice40_pll(f_in_hz: float, f_out_hz: float) -> dict:
    """SB_PLL40 DIVR/DIVF/DIVQ/FILTER_RANGE for ``f_out_hz`` (icepll's search, simple feedback).

    f_pfd = f_in / (DIVR + 1) in 10..133 MHz, f_vco = f_pfd * (DIVF + 1) in 533..1066 MHz,
    f_out = f_vco / 2**DIVQ in 16..275 MHz; the first setting with the smallest error wins.
    """
    fi, fo = f_in_hz / 1e6, f_out_hz / 1e6
    lo, hi = ICE40_PLL["in_mhz"]
    if not lo <= fi <= hi:
        raise PLLError(f"iCE40 PLL input {fi} MHz is outside {lo}..{hi} MHz")
    lo, hi = ICE40_PLL["out_mhz"]
    if not lo <= fo <= hi:
        raise PLLError(f"iCE40 PLL output {fo} MHz is outside {lo}..{hi} MHz")
    best = None
    for divr in range(16):
        pfd = fi / (divr + 1)
        if not ICE40_PLL["pfd_mhz"][0] <= pfd <= ICE40_PLL["pfd_mhz"][1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not ICE40_PLL["vco_mhz"][0] <= vco <= ICE40_PLL["vco_mhz"][1]:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if not ICE40_PLL["out_mhz"][0] <= out <= ICE40_PLL["out_mhz"][1]:
                    continue
                if best is None or abs(out - fo) < abs(best[3] - fo) - 1e-12:
                    best = (divr, divf, divq, out, pfd, vco)
    if best is None:
        raise PLLError(f"no iCE40 PLL setting makes {fo} MHz from {fi} MHz")
    divr, divf, divq, out, pfd, vco = best
    fr = next(i + 1 for i, lim in enumerate((17, 26, 44, 66, 101, math.inf)) if pfd < lim)
    return {"primitive": "SB_PLL40_PAD", "DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": fr,
            "f_in_hz": f_in_hz, "f_pfd_hz": pfd * 1e6, "f_vco_hz": vco * 1e6, "f_out_hz": out * 1e6,
            "error_ppm": round((out - fo) / fo * 1e6, 1)}


def plan_clock(board: Board, clock_hz: float) -> dict:
    """The clock plan of a board at a target: {"pll": params or None, "f_out_hz": achieved}."""
    if abs(clock_hz - board.osc_hz) < 1:
        return {"pll": None, "f_out_hz": board.osc_hz, "error_ppm": 0.0,
                "note": f"target equals the {board.osc_hz / 1e6:g} MHz oscillator: no PLL"}
    p = (ecp5_pll if board.family == "ecp5" else ice40_pll)(board.osc_hz, clock_hz)
    return {"pll": p, "f_out_hz": p["f_out_hz"], "error_ppm": p["error_ppm"]}


def uart_divisor(clock_hz: float, baud: int) -> tuple:
    """(divisor, error in percent): clock cycles per bit, rounded, and the resulting baud error."""
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, not {baud!r}")
    div = round(clock_hz / baud)
    if div < 4:
        raise ValueError(f"baud {baud} is too fast for a {clock_hz / 1e6:g} MHz clock: the UART needs at least "
                         f"4 clock cycles per bit (divisor {clock_hz / baud:.2f})")
    return div, (clock_hz / div - baud) / baud * 100


# ---- the top ------------------------------------------------------------------------------------
def hold_reset_until(m: Module, lock, domain: str = "sync", cycles: int = 2) -> None:
    """Hold ``domain`` in reset while ``lock`` is 0 and for ``cycles`` clock cycles after it rises
    (LOCK is asynchronous to the PLL's output clock: ResetSynchronizer asserts at once, releases in
    step). The core's lanes and trees have no reset: ``cycles`` >= ``Plan.drain`` flushes them."""
    m.submodules.reset_sync = ResetSynchronizer(~lock, domain=domain, stages=max(2, cycles))


class BoardTop(Elaboratable):
    """Oscillator, PLL, reset, LEDs and the UART around ``LinkedCore`` (see the module docstring)."""

    def __init__(self, cfg, board, *, clock_hz: float | None = None, baud: int | None = None):
        self.cfg = load_config(cfg)
        self.board = board if isinstance(board, Board) else resolve_board(board)
        target = float(clock_hz if clock_hz is not None else self.board.default_clock_hz)
        if target <= 0:
            raise ValueError(f"clock_hz must be positive, not {clock_hz!r}")
        self.target_hz = target
        self.clock = plan_clock(self.board, target)
        self.clock_hz = int(round(self.clock["f_out_hz"]))
        self.baud = int(baud if baud is not None else self.board.default_baud)
        self.divisor, self.baud_error_pct = uart_divisor(self.clock_hz, self.baud)

    def make_link(self):
        from eqfpga.hdl.link import LinkedCore
        return LinkedCore(self.cfg, divisor=self.divisor, clk_hz=self.clock_hz, local_resets=True)

    def _clocking(self, m, platform):
        """The sync domain from the oscillator (through the PLL); returns the PLL lock signal."""
        b = self.board
        m.domains.sync = ClockDomain("sync")
        pll = self.clock["pll"]
        lock = Signal()
        clk = Signal(name="clk_pll")
        if pll is None:
            osc = platform.request(b.osc_resource, 0, dir="-")
            m.submodules.osc_buf = buf = io.Buffer("i", osc)
            m.d.comb += [clk.eq(buf.i), lock.eq(1)]
        elif b.family == "ecp5":
            osc = platform.request(b.osc_resource, 0, dir="-")
            m.submodules.osc_buf = buf = io.Buffer("i", osc)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{b.osc_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{pll['f_out_hz'] / 1e6:.6g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
                p_CLKOP_CPHASE=pll["CLKOP_CPHASE"], p_CLKOP_FPHASE=pll["CLKOP_FPHASE"],
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=pll["CLKFB_DIV"],
                i_RST=Const(0), i_STDBY=Const(0), i_CLKI=buf.i, o_CLKOP=clk, i_CLKFB=clk,
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1), i_PHASESTEP=Const(1),
                i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0), o_LOCK=lock)
        else:
            # SB_PLL40_PAD takes the oscillator straight from its package pin (the PLL's input pad)
            osc = platform.request(b.osc_resource, 0, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll["DIVR"], p_DIVF=pll["DIVF"], p_DIVQ=pll["DIVQ"],
                p_FILTER_RANGE=pll["FILTER_RANGE"],
                i_PACKAGEPIN=osc.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=clk, o_LOCK=lock)
        m.d.comb += ClockSignal("sync").eq(clk)
        # No constraint on the PLL output net: yosys renames it (clk, rx_sync.clk, ...), and nextpnr
        # derives its frequency from the oscillator pin's constraint through the PLL's dividers
        # ("Derived frequency constraint of ... for net ..."); build_board also passes --freq.
        hold_reset_until(m, lock, cycles=Plan(self.cfg).drain + 2)
        return lock

    def elaborate(self, platform):
        m = Module()
        lock = self._clocking(m, platform)

        m.submodules.link = link = self.make_link()
        uart = platform.request(*self.board.uart, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.rx_sync = FFSynchronizer(rx_buf.i, link.rx, init=1)
        m.d.comb += tx_buf.o.eq(link.tx)

        # tx activity: the line held low for a moment is visible
        tx_seen = Signal(16)
        with m.If(~link.tx):
            m.d.sync += tx_seen.eq(0xFFFF)
        with m.Elif(tx_seen != 0):
            m.d.sync += tx_seen.eq(tx_seen - 1)
        in_reset = Signal()
        m.d.comb += in_reset.eq(ResetSignal("sync"))
        roles = {"heartbeat": link.status[3], "error": link.status[2], "busy": link.status[0],
                 "rx activity": link.status[1], "idle": link.idle, "PLL locked": lock,
                 "in reset": in_reset, "tx activity": tx_seen != 0}
        for role, (name, number) in zip(LED_ROLES, self.board.leds):
            buf = io.Buffer("o", platform.request(name, number, dir="-"))
            m.submodules[f"led_{name}_{number}"] = buf
            m.d.comb += buf.o.eq(roles[role])
        return m


# ---- the core alone -----------------------------------------------------------------------------
class SerialWrapper(Elaboratable):
    """The core with 5 pins (clk, rst, sin, load, sout): every input from a shift register, every
    output into another (see the module docstring)."""

    def __init__(self, core):
        self.core = core
        self.sin, self.load, self.sout = Signal(name="sin"), Signal(name="load"), Signal(name="sout")
        self.inputs, self.outputs = [], []
        for path, member, value in core.signature.flatten(core):
            (self.inputs if member.flow == wiring.In else self.outputs).append(value)
        self.in_bits = sum(len(Value.cast(v)) for v in self.inputs)
        self.out_bits = sum(len(Value.cast(v)) for v in self.outputs)

    @property
    def overhead(self) -> dict:
        """The wrapper's own cost, to subtract from a core-only build's figures (an estimate)."""
        return {"TRELLIS_FF": self.in_bits + self.out_bits, "LUT4": self.out_bits}

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        si = Signal(self.in_bits)
        so = Signal(self.out_bits)
        m.d.sync += si.eq(Cat(si[1:], self.sin))
        pos = 0
        for v in self.inputs:
            w = len(Value.cast(v))
            m.d.comb += v.eq(si[pos:pos + w])
            pos += w
        with m.If(self.load):
            m.d.sync += so.eq(Cat(*[Value.cast(v) for v in self.outputs]))
        with m.Else():
            m.d.sync += so.eq(so[1:])
        m.d.comb += self.sout.eq(so[0])
        return m
