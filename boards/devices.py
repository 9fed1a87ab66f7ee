"""The one table of FPGA parts both builds use: resources, nextpnr flag, packages, clock pad.

``device(name)`` returns a :class:`Device` (``DEVICES`` holds them all). Resources are from the
Lattice data sheets (ECP5 DS1044; iCE40 LP/HX and UltraPlus): LUT4s and flip-flops (one each per
logic cell on iCE40), multipliers (MULT18X18D / SB_MAC16), block RAMs (18 kbit DP16KD / 4 kbit
EBR), 256 kbit single-port SPRAMs, PLLs. Family-wide facts (block RAM modes, multiplier width,
logic fit) are in :mod:`eqfpga.hdl.resources`; which yosys pass, nextpnr and packer a family uses
is ``FAMILY_TOOLS``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from eqfpga.hdl.resources import FAMILIES, Family


@dataclass(frozen=True)
class Device:
    name: str                  # e.g. "LFE5U-85F", "iCE40UP5K"
    family: str                # "ecp5" or "ice40"
    nextpnr_flag: str          # nextpnr's device option, e.g. "--85k", "--up5k"
    luts: int                  # LUT4 (ECP5) / logic cells (iCE40)
    ffs: int
    dsps: int                  # MULT18X18D / SB_MAC16
    block_rams: int            # DP16KD / EBR
    spram: int = 0             # iCE40UP single-port RAMs (16K x 16)
    plls: int = 0
    packages: tuple = ()       # nextpnr's package names; the first is the default of a core build
    clock_pads: dict = field(default_factory=dict)   # package -> a clock-capable input pad for clk
    speed: str | None = None   # speed grade given to nextpnr (ECP5)

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]

    @property
    def default_package(self) -> str:
        return self.packages[0]

    def nextpnr_package(self, platform_package: str) -> str:
        """nextpnr's name of an Amaranth platform's package (e.g. ECP5 "BG381" -> "CABGA381")."""
        if self.family == "ecp5":
            return _ECP5_PACKAGE_NAMES.get(platform_package, platform_package)
        return platform_package.lower() + (":4k" if self.name.endswith("4K") else "")

    def resources(self) -> dict:
        """Available resources by the names the reports use (ECP5: LUT4, TRELLIS_FF, MULT18X18D,
        DP16KD; iCE40: LC, EBR, DSP, SPRAM, PLL)."""
        if self.family == "ecp5":
            return {"LUT4": self.luts, "TRELLIS_FF": self.ffs, "MULT18X18D": self.dsps, "DP16KD": self.block_rams}
        return {"LC": self.luts, "EBR": self.block_rams, "DSP": self.dsps, "SPRAM": self.spram, "PLL": self.plls}

    def available(self) -> dict:
        """Available resources by nextpnr's BEL names (what its utilisation report counts)."""
        if self.family == "ecp5":
            return {"TRELLIS_COMB": self.luts, "TRELLIS_FF": self.ffs, "MULT18X18D": self.dsps,
                    "DP16KD": self.block_rams, "EHXPLLL": self.plls}
        return {"ICESTORM_LC": self.luts, "ICESTORM_DSP": self.dsps, "ICESTORM_RAM": self.block_rams,
                "ICESTORM_SPRAM": self.spram, "ICESTORM_PLL": self.plls}


# yosys synthesis pass, nextpnr and bitstream packer of each family
FAMILY_TOOLS = {
    "ecp5": {"synth": "synth_ecp5", "nextpnr": "nextpnr-ecp5", "pack": "ecppack"},
    "ice40": {"synth": "synth_ice40 -dsp", "nextpnr": "nextpnr-ice40", "pack": "icepack"},
}

# G2 is the ULX3S's 25 MHz oscillator pin (PCLKT6_0) on CABGA381: a pad with a route to the global
# clock network (left to nextpnr, clk may land on one without, and router2 then fails).
_ECP5_PACKAGES = ("CABGA381", "CABGA256", "CSFBGA285")
_ECP5_CLOCK_PADS = {"CABGA381": "G2"}
# Amaranth's ECP5 package names -> nextpnr's
_ECP5_PACKAGE_NAMES = {"BG256": "CABGA256", "BG381": "CABGA381", "BG554": "CABGA554", "BG756": "CABGA756",
                       "MG285": "CSFBGA285"}


def _ecp5(name, flag, luts, dsps, brams, plls, packages=_ECP5_PACKAGES):
    return Device(name, "ecp5", flag, luts=luts, ffs=luts, dsps=dsps, block_rams=brams, plls=plls,
                  packages=packages, clock_pads=_ECP5_CLOCK_PADS, speed="6")


def _ice40(name, flag, lcs, brams, dsps, spram, plls, packages, clock_pads=None):
    return Device(name, "ice40", flag, luts=lcs, ffs=lcs, dsps=dsps, block_rams=brams, spram=spram,
                  plls=plls, packages=packages, clock_pads=clock_pads or {})


DEVICES: dict[str, Device] = {d.name: d for d in (
    _ecp5("LFE5U-12F", "--12k", 12096, 28, 32, 2),
    _ecp5("LFE5U-25F", "--25k", 24288, 28, 56, 2),
    _ecp5("LFE5U-45F", "--45k", 43848, 72, 108, 4, _ECP5_PACKAGES + ("CABGA554",)),
    _ecp5("LFE5U-85F", "--85k", 83640, 156, 208, 4, _ECP5_PACKAGES + ("CABGA554", "CABGA756")),
    # pin 35 of SG48 is the iCEBreaker's 12 MHz oscillator, a global buffer input (GBIN)
    _ice40("iCE40UP5K", "--up5k", 5280, 30, 8, 4, 1, ("sg48", "uwg30"), {"sg48": "35"}),
    _ice40("iCE40HX8K", "--hx8k", 7680, 32, 0, 0, 2, ("ct256", "cb132", "tq144", "bg121", "cm225")),
    _ice40("iCE40LP8K", "--lp8k", 7680, 32, 0, 0, 2, ("cm81", "cm121", "cm225")),
    _ice40("iCE40HX4K", "--hx8k", 3520, 20, 0, 0, 2, ("tq144:4k", "bg121:4k", "cb132:4k")),
    _ice40("iCE40LP4K", "--lp8k", 3520, 20, 0, 0, 2, ("cm81:4k", "cm121:4k", "cm225:4k")),
    _ice40("iCE40HX1K", "--hx1k", 1280, 16, 0, 0, 1, ("tq144", "vq100", "cb132")),
    _ice40("iCE40LP1K", "--lp1k", 1280, 16, 0, 0, 1, ("cm36", "cm49", "cm81", "cm121", "qn84", "swg16tr")),
)}
# The ECP5 variants with SERDES (UM) and 5G SERDES (UM5G): the same fabric, their own nextpnr flag
for _size, _k in (("25F", "25k"), ("45F", "45k"), ("85F", "85k")):
    _base = DEVICES[f"LFE5U-{_size}"]
    for _prefix, _flag in (("LFE5UM", "--um-"), ("LFE5UM5G", "--um5g-")):
        _d = Device(**{**_base.__dict__, "name": f"{_prefix}-{_size}", "nextpnr_flag": _flag + _k})
        DEVICES[_d.name] = _d


def device(name: str) -> Device:
    """The :class:`Device` of a part name; ValueError lists the known ones."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; known: {', '.join(sorted(DEVICES))}")
    return DEVICES[name]
