"""What a config's core needs on an FPGA family, from its plan: block RAMs, multipliers, logic.

``estimate(cfg, family, train=True, link=False)`` is the one resource estimate: ``eqfpga generate``
reports it, the build's pre-check (``eqfpga.boards.fit``) compares it with a device, the benchmark
tabulates it. Plain Python fed by :class:`eqfpga.hdl.plan.Plan` (no Amaranth, no torch).

* **Memories**: every memory of the core (``memory_map``: width, depth, write granularity and
  copies, as the lanes, the root and the loader lay them out) and, with ``link=True``, the serial link's buffer, receive FIFO
  and config ROM. Each gets the fewest block RAMs of the family that can hold it (a lower bound:
  yosys may pack worse, or put a small memory in LUT RAM on ECP5).
* **Multipliers**: one a lane (P): the products of the relaxation and of the update share it,
  each split into the family's DSP blocks (18 x 18 on ECP5, 16 x 16 on iCE40).
* **Logic**: ``base + k * P * lane cost`` (``Family.logic_fit``): the lane cost is fitted to
  ``eqfpga lane-stat`` (one lane through yosys), k and base to a whole board top (core, link, PLL:
  on ECP5 the packed TRELLIS_COMB of the P = 64 mnist-1h build, 65,123 at commit 6e144cb,
  docs/hardware.md; the formula gives 65,706; logic cells on iCE40). Good to about 5%, enough to
  refuse the hopeless cases before any tool runs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from eqfpga.golden.config import ConfigError, EPConfig

from .plan import N_SLOTS, Plan
from .protocol import INFO_BYTES, MAX_PAYLOAD, RX_FIFO_DEPTH, config_json

# ---- block RAM packing ----------------------------------------------------------------------
# ECP5 DP16KD aspect ratios: (data width, depth, byte-enable granule or None). 36 bits only as a
# simple dual-port RAM (one read, one write port), which is how the core uses every memory.
DP16KD_MODES = ((36, 512, 9), (18, 1024, 9), (9, 2048, 9), (4, 4096, None), (2, 8192, None), (1, 16384, None))
# iCE40 EBR aspect ratios (width, depth); 256 x 16 has a per-bit write mask.
EBR_MODES = ((16, 256), (8, 512), (4, 1024), (2, 2048))


def dp16kd_blocks(width: int, depth: int, granularity: int | None = None) -> int:
    """Fewest DP16KD blocks holding a width x depth memory written in lanes of ``granularity`` bits.

    A lane written on its own must not share a byte-enable granule (9 bits) with another lane, so
    in the byte-enabled modes lanes are padded to whole granules.
    """
    g = granularity or width
    lanes = math.ceil(width / g)
    best = None
    for w, d, be in DP16KD_MODES:
        if g == width or w <= g:            # whole-word writes, or each block slice within one lane
            across = math.ceil(width / w) if g == width else lanes * math.ceil(g / w)
        else:                                # several lanes per block: pad each lane to granules
            per = w // (math.ceil(g / be) * be) if be else 0
            if per == 0:
                continue
            across = math.ceil(lanes / per)
        n = across * math.ceil(depth / d)
        best = n if best is None else min(best, n)
    return best


def ebr_blocks(width: int, depth: int, granularity: int | None = None) -> int:
    """Fewest iCE40 EBRs (4 kbit) for a simple dual-port memory; lanes written apart need the
    16-bit mode's write mask or blocks that stay inside one lane."""
    g = granularity or width
    best = None
    for w, d in EBR_MODES:
        if g == width or w == 16:
            across = math.ceil(width / w)
        else:
            across = math.ceil(width / g) * math.ceil(g / w)
        n = across * math.ceil(depth / d)
        best = n if best is None else min(best, n)
    return best


# ---- families -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Family:
    """The resource kinds of an FPGA family, by the names yosys and nextpnr give them."""
    name: str                  # "ecp5" or "ice40"
    block_ram: str             # the block RAM primitive (DP16KD, EBR)
    block_ram_kbit: int
    dsp: str                   # the multiplier primitive (MULT18X18D, SB_MAC16)
    dsp_width: int             # operand bits of one DSP block
    logic_unit: str            # what the logic estimate counts
    logic_fit: tuple           # (base, k): logic = base + k * P * lane cost (training core)
    lut_ram: bool              # small memories may go to LUT RAM (then only the weights decide)
    logic_memory_depth: int    # memories this shallow or shallower are built from logic (0 blocks)
    dsp_note: str = ""         # how yosys maps multipliers on this family

    def block_rams(self, width: int, depth: int, granularity: int | None = None) -> int:
        if depth <= self.logic_memory_depth:
            return 0
        return (dp16kd_blocks if self.name == "ecp5" else ebr_blocks)(width, depth, granularity)

    def dsp_blocks(self, a_bits: int, b_bits: int) -> int:
        return math.ceil(a_bits / self.dsp_width) * math.ceil(b_bits / self.dsp_width)


FAMILIES = {
    "ecp5": Family("ecp5", block_ram="DP16KD", block_ram_kbit=18, dsp="MULT18X18D", dsp_width=18,
                   logic_unit="LUT4 (TRELLIS_COMB)", logic_fit=(3300, 0.98), lut_ram=True,
                   logic_memory_depth=32),
    # yosys maps every core memory deeper than 4 words to EBR (iCE40 has no LUT RAM)
    "ice40": Family("ice40", block_ram="EBR", block_ram_kbit=4, dsp="SB_MAC16", dsp_width=16,
                    logic_unit="logic cells", logic_fit=(5310, 1.1), lut_ram=False,
                    logic_memory_depth=4,
                    dsp_note="; yosys -dsp maps every multiplier to a DSP, however many the device has"),
}


def family_info(name: str) -> Family:
    """The :class:`Family` of "ecp5" or "ice40"."""
    if name not in FAMILIES:
        raise ValueError(f"unknown FPGA family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


# ---- what the core holds --------------------------------------------------------------------
def memory_map(cfg: EPConfig) -> dict:
    """{name: (width, depth, write granularity or None, count)} of every memory of the core, as
    hdl/lane.py, hdl/root.py and hdl/loader.py lay them out: ``count`` equal memories (one a lane)."""
    pl, f = Plan(cfg), cfg.fixed
    P, N = pl.P, pl.N
    sw = f.state_frac + 1
    out = {}
    out["W"] = (f.weight_bits, pl.w_words, None, P)         # every layer's weights, one memory a lane
    out["b0"] = (f.bias_bits, max(2, pl.blocks(1)), None, P)
    out["d0"] = (pl.acc_width, max(2, pl.blocks(1)), None, P)
    out["lane_states"] = (sw, max(2, N_SLOTS * pl.SL), None, P)
    if N > 2:
        out["lane_state_copies"] = (sw, max(2, N_SLOTS * pl.SL), None, P)
        for k in pl.middle_layers:
            out[f"fb{k}"] = (pl.acc_width, max(2, pl.blocks(k)), None, P)
    out["root_bias"] = (f.bias_bits, max(2, pl.SR), None, 1)
    out["root_states"] = (sw, max(2, N_SLOTS * pl.SR), None, 1)
    pixel_index_bits = max(1, (cfg.sizes[0] - 1).bit_length())
    out["pixels"] = (pixel_index_bits + max(1, f.input_frac), 2 << pixel_index_bits, None, 1)
    return out


def link_memory_map(cfg: EPConfig) -> dict:
    """{name: (width, depth, None)} of the serial link's memories (payload buffer, receive FIFO, config ROM)."""
    # the config ROM serves INFO's fixed part and the config JSON
    return {"link_buffer": (8, 2 * MAX_PAYLOAD, None, 1), "link_rx_fifo": (8, RX_FIFO_DEPTH, None, 1),
            "link_config_rom": (8, INFO_BYTES + len(config_json(cfg)), None, 1)}


def lane_cost(cfg: EPConfig) -> int:
    """Logic of one lane, in TRELLIS_COMB (LUT4 + 2 per CCU2C + ~7.4 per 16x4 LUT RAM), from its
    widths: fitted to ``eqfpga lane-stat`` of the lean lane (mnist-1h at P = 64: 995, the formula 995;
    tiny: 805, the formula 766).
    The ARX hash (~420) counts once per ``Plan.hash_share`` lanes."""
    f, pl = cfg.fixed, Plan(cfg)
    lane = 340 + 6 * pl.acc_width + 10 * f.weight_bits + 6 * f.bias_bits + 10 * (f.state_frac + 1)
    if f.update_rounding == "stochastic":
        try:
            share = pl.hash_share
        except ConfigError:         # a learning rate no shift can make: the core refuses it anyway
            share = 1
        lane += 420 / share
    return int(lane)


@dataclass(frozen=True)
class Memory:
    width: int
    depth: int
    granularity: int | None     # bits written on their own (a lane), None: whole words
    blocks: int                 # block RAMs at least, all copies (0: built from logic)
    count: int = 1              # equal memories (one a lane)

    @property
    def bits(self) -> int:
        return self.width * self.depth * self.count


@dataclass(frozen=True)
class Multipliers:
    """A group of equal multipliers of the core."""
    role: str                   # "mac" or "update"
    count: int
    a_bits: int
    a_signed: bool
    b_bits: int
    b_signed: bool

    @property
    def width(self) -> str:
        """e.g. "16s x 9u"."""
        return f"{self.a_bits}{'s' if self.a_signed else 'u'} x {self.b_bits}{'s' if self.b_signed else 'u'}"


def multipliers(cfg: EPConfig, train: bool = True) -> tuple:
    """The core's multipliers: one a lane (weight x state for the products; the update's
    state x state and (a - c) x pixel products use the same multiplier), none elsewhere."""
    f, P = cfg.fixed, cfg.parallelism
    sw = f.state_frac + 1
    return (Multipliers("mac", P, max(f.weight_bits, sw + 1), True, max(sw, f.input_frac) + 1, True),)


@dataclass(frozen=True)
class Estimate:
    """The resources ``cfg``'s core (and, with ``link``, the serial link) needs on ``family``."""
    config: str
    family: str
    train: bool
    link: bool
    memories: dict              # {name: Memory} of the core
    link_memories: dict         # {name: Memory} of the link (empty without link)
    multipliers: tuple          # (Multipliers, ...): mac, then update when training
    dsp_per_multiplier: tuple   # DSP blocks each multiplier of the group takes, in the same order
    logic: int                  # logic estimate in the family's logic_unit

    @property
    def family_info(self) -> Family:
        return FAMILIES[self.family]

    @property
    def weight_memories(self) -> dict:
        return {k: m for k, m in self.memories.items() if k.startswith("W")}

    @property
    def weight_blocks(self) -> int:
        """Block RAMs of the weight memories: they alone decide whether a config fits (ECP5)."""
        return sum(m.blocks for m in self.weight_memories.values())

    @property
    def memory_blocks(self) -> int:
        """Block RAMs of every core memory (an upper view: ECP5 may put the small ones in LUT RAM)."""
        return sum(m.blocks for m in self.memories.values())

    @property
    def link_blocks(self) -> int:
        return sum(m.blocks for m in self.link_memories.values())

    @property
    def multiplier_count(self) -> int:
        return sum(g.count for g in self.multipliers)

    @property
    def dsp_blocks(self) -> int:
        return sum(g.count * k for g, k in zip(self.multipliers, self.dsp_per_multiplier))

    @property
    def memory_bits(self) -> int:
        return sum(m.bits for m in self.memories.values())

    def to_dict(self) -> dict:
        """Plain data for JSON reports: the fields, each multiplier's width and the totals."""
        d = asdict(self)
        d["multipliers"] = [dict(asdict(g), width=g.width, dsp_each=k)
                            for g, k in zip(self.multipliers, self.dsp_per_multiplier)]
        del d["dsp_per_multiplier"]
        fam = self.family_info
        d["totals"] = {"weight_blocks": self.weight_blocks, "memory_blocks": self.memory_blocks,
                       "link_blocks": self.link_blocks, "block_ram": fam.block_ram,
                       "multipliers": self.multiplier_count, "dsp_blocks": self.dsp_blocks, "dsp": fam.dsp,
                       "logic": self.logic, "logic_unit": fam.logic_unit, "memory_bits": self.memory_bits}
        return d


def estimate(cfg: EPConfig, family: str, train: bool = True, link: bool = False) -> Estimate:
    """The resources of ``cfg``'s core on ``family`` ("ecp5" or "ice40"); see the module docstring.

    ``train=False``: the inference-only core (no update multipliers). ``link=True``: add the serial
    link's memories (a board build); the logic fit always covers core and link.
    """
    if not isinstance(cfg, EPConfig):
        raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
    fam = family_info(family)
    mems = {k: Memory(w, d, g, n * fam.block_rams(w, d, g), n) for k, (w, d, g, n) in memory_map(cfg).items()}
    links = ({k: Memory(w, d, g, n * fam.block_rams(w, d, g), n)
              for k, (w, d, g, n) in link_memory_map(cfg).items()} if link else {})
    groups = multipliers(cfg, train)
    base, k = fam.logic_fit
    logic = int(base + k * cfg.parallelism * lane_cost(cfg) * (1 if train else 0.6))
    return Estimate(config=cfg.name, family=fam.name, train=train, link=link, memories=mems,
                    link_memories=links, multipliers=groups,
                    dsp_per_multiplier=tuple(fam.dsp_blocks(g.a_bits, g.b_bits) for g in groups), logic=logic)

