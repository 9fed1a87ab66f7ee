"""Where the core keeps its parameters and states: one ``MemoryView`` per memory (plain Python).

The simulators (``eqfpga.sim.fastsim``, ``eqfpga.sim.verify``) read the core's memories only
through these views: the path of each memory in the design's hierarchy, the fields of its words,
and which logical value each field holds. A core with another organisation describes its memories
here (``memory_views``) and the simulators follow; nothing else outside ``eqfpga.hdl`` knows how the
core lays out its memories.

Index conventions (``MemoryView.index[addr * fields + f]``, -1: nothing / unused):

* kind ``"w"`` / ``"b"``: the parameter's position in the logical order of all parameters
  (``eqfpga.sim.fastsim.flat_params``): per layer n, W_n row-major (out x in), then b_n.
* kind ``"state"``: ``slot * sum(sizes[1:]) + sum(sizes[1:k]) + i`` for state s_k[i] (k = 1..N)
  held in state slot ``slot`` (``Plan.step_slots``).
* kind ``"d0"``: neuron i of layer 1 (the input drive W_0 x, accumulator-wide).
"""
from __future__ import annotations

from dataclasses import dataclass

from eqfpga.golden.config import EPConfig

from .plan import N_SLOTS, Plan

KINDS = ("w", "b", "state", "d0")


@dataclass(frozen=True)
class MemoryView:
    path: tuple          # instance names from the core's top, ending with the memory's own name
    kind: str            # "w" (weights W_layer), "b" (biases b_layer), "state", "d0"
    layer: int           # n for kind w/b; 0 for state/d0
    depth: int           # words
    field_bits: int      # field f of a word is bits [f*field_bits, (f+1)*field_bits)
    fields: int
    signed: bool
    index: tuple         # len depth*fields, entry [addr*fields + f] (see the module docstring)

    def __post_init__(self):
        if not self.path or not all(isinstance(p, str) and p for p in self.path):
            raise ValueError(f"MemoryView.path must be a non-empty tuple of names, not {self.path!r}")
        if self.kind not in KINDS:
            raise ValueError(f"MemoryView.kind must be one of {KINDS}, not {self.kind!r}")
        if self.depth < 1 or self.fields < 1 or not 1 <= self.field_bits <= 64:
            raise ValueError(f"MemoryView {self.name}: depth {self.depth}, fields {self.fields}, "
                             f"field_bits {self.field_bits} (1..64)")
        if len(self.index) != self.depth * self.fields:
            raise ValueError(f"MemoryView {self.name}: index has {len(self.index)} entries, "
                             f"depth * fields = {self.depth * self.fields}")

    @property
    def name(self) -> str:
        """The hierarchical name, e.g. ``lane3.w0``."""
        return ".".join(self.path)

    @property
    def word_bits(self) -> int:
        """Bits of a word the fields cover (the memory may be wider)."""
        return self.fields * self.field_bits


def state_index(cfg: EPConfig, slot: int, k: int, i: int) -> int:
    """The ``index`` value of state s_k[i] (k = 1..N) in slot ``slot``."""
    s = cfg.sizes
    return slot * sum(s[1:]) + sum(s[1:k]) + i


def _view(path, kind, layer, depth, field_bits, fields, signed, pos: dict) -> MemoryView:
    """A view from {(addr, field): index}; every other field is -1."""
    index = [-1] * (depth * fields)
    for (a, f), v in pos.items():
        index[a * fields + f] = v
    return MemoryView(tuple(path), kind, layer, depth, field_bits, fields, signed, tuple(index))


def memory_views(cfg: EPConfig) -> list[MemoryView]:
    """Every memory of ``EPCore(cfg)`` that holds a weight, bias, state or the input drive.

    The lane-local core (``Plan``): lane p (submodule ``lane{p}``) holds ``w`` (every layer's weights), ``b0``,
    ``d0`` and ``st`` (its layer-1 states); the root (``root``) holds ``bias`` (b_1..b_(N-1)) and
    ``st`` (the states of layers 2..N). The lanes' copies of the middle layers' states (``cp``)
    duplicate the root's and are not listed. One field a word; depths are the memories' own.
    """
    pl = Plan(cfg)
    f, s, N, P = cfg.fixed, cfg.sizes, pl.N, pl.P
    views, base = [], 0
    offsets = []
    for n in range(N):
        offsets.append(base)
        base += s[n + 1] * s[n] + s[n + 1]
    lane_w = [dict() for _ in range(P)]
    for n in range(N):
        for p in range(P):
            lane_w[p][n] = {}
        for i in range(s[n + 1]):
            for j in range(s[n]):
                p, a = pl.weight_addr(n, i, j)
                lane_w[p][n][(a, 0)] = offsets[n] + i * s[n] + j
    sw = f.state_frac + 1
    loff, roff = pl.lane_state_offsets, pl.root_state_offsets
    for p in range(P):
        views.append(_view((f"lane{p}", "w"), "w", 0, pl.w_words, f.weight_bits, 1, True,
                           {k: v for n in range(N) for k, v in lane_w[p][n].items()}))
        pos = {(g, 0): offsets[0] + s[1] * s[0] + g * P + p for g in range(pl.lane_groups(1, p))}
        views.append(_view((f"lane{p}", "b0"), "b", 0, max(2, pl.blocks(1)), f.bias_bits, 1, True, pos))
        pos = {(slot * pl.SL + loff[1] + g, 0): state_index(cfg, slot, 1, g * P + p)
               for slot in range(N_SLOTS) for g in range(pl.lane_groups(1, p))}
        views.append(_view((f"lane{p}", "st"), "state", 0, max(2, N_SLOTS * pl.SL), sw, 1, False, pos))
        pos = {(g, 0): g * P + p for g in range(pl.lane_groups(1, p))}
        views.append(_view((f"lane{p}", "d0"), "d0", 0, max(2, pl.blocks(1)), pl.acc_width, 1, True, pos))
    pos = {(roff[n + 1] + i, 0): offsets[n] + s[n + 1] * s[n] + i for n in range(1, N) for i in range(s[n + 1])}
    views.append(_view(("root", "bias"), "b", 1, max(2, pl.SR), f.bias_bits, 1, True, pos))
    pos = {(slot * pl.SR + roff[k] + i, 0): state_index(cfg, slot, k, i)
           for slot in range(N_SLOTS) for k in pl.root_layers for i in range(s[k])}
    views.append(_view(("root", "st"), "state", 0, max(2, N_SLOTS * pl.SR), sw, 1, False, pos))
    return views
