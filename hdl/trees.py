"""The core's two global structures, both registered trees so that they scale with the lanes.

``Broadcast``: one record to P lanes through ``broadcast_levels(P)`` register levels, each register
driving at most ``BROADCAST_FANOUT`` registers of the next (bounded fan-out, one level a cycle), and
a register of the last level ``leaf`` neighbouring lanes (``BROADCAST_LEAF``: a register a lane
would cost the record's width in flip-flops per lane, ~7k at P = 64).
``SumTree``: P values summed pairwise, one registered level a cycle, ``tree_levels(P)`` levels
(the lanes' products into the output layer, and the popcounts of their flags). The sum is exact:
each level is one bit wider than the one below (for the accumulator-wide tree the config's
accumulator bound, ``EPConfig.check_fixed``, already covers every partial sum, so it keeps its width).

Neither has a reset (``reset_less``): they carry data, and a reset held ``Plan.drain`` cycles
flushes them with the reset controller's NOPs (see hdl/delay.py).
"""
from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .plan import BROADCAST_FANOUT, BROADCAST_LEAF, broadcast_levels, tree_levels

# Attribute on the broadcast registers. Every register of a level holds the same value, so yosys's
# opt_merge would fold them into one flip-flop that fans out to the whole chip. (It did: the P = 32
# ULX3S build routed at 50 MHz through one such register.) A wire's ``keep`` does not stop that.
# The board flow's yosys script (boards.build.KEEP_APART) marks the flip-flops that drive these wires
# ``keep``, and opt_merge leaves those alone.
NO_MERGE = "eqfpga_no_merge"


def _cdiv(a, b):
    return -(-a // b)


class Broadcast(wiring.Component):
    """``i`` (any shape or layout) to ``o[0..P-1]``, ``levels`` cycles later (``broadcast_levels``);
    lanes ``leaf*q .. leaf*q + leaf - 1`` read the same last-level register."""

    def __init__(self, shape, P: int, *, leaf: int = BROADCAST_LEAF):
        self.P, self.leaf, self.levels, self._shape = P, leaf, broadcast_levels(P, leaf), shape
        super().__init__({"i": In(shape), "o": Out(shape).array(P)})

    def elaborate(self, platform):
        m = Module()
        # widths of the levels, last first: P, P/F, P/F^2, ... (levels entries)
        widths = [_cdiv(self.P, self.leaf)]
        while len(widths) < self.levels:
            widths.append(_cdiv(widths[-1], BROADCAST_FANOUT))
        widths.reverse()
        above = [self.i]
        for lvl, n in enumerate(widths):
            regs = [Signal(self._shape, name=f"bc{lvl}_{q}", attrs={NO_MERGE: 1}, reset_less=True) for q in range(n)]
            for q, r in enumerate(regs):
                m.d.sync += r.eq(above[q * len(above) // n])
            above = regs
        for p in range(self.P):
            m.d.comb += self.o[p].eq(above[p // self.leaf])
        return m


class SumTree(wiring.Component):
    """``o`` = sum of ``i[0..P-1]``, ``tree_levels(P)`` cycles later. ``grow``: widen a bit a level."""

    def __init__(self, shape, P: int, *, grow: bool = True):
        shape = Shape.cast(shape)
        self.P, self.levels = P, tree_levels(P)
        width = shape.width + (self.levels if grow else 0)
        self.out_shape = Shape(width, shape.signed)
        self._grow, self._shape = grow, shape
        super().__init__({"i": In(shape).array(P), "o": Out(self.out_shape)})

    def elaborate(self, platform):
        m = Module()
        vals, width = list(self.i), self._shape.width
        lvl = 0
        while len(vals) > 1:
            width += 1 if self._grow else 0
            nxt = []
            for q in range(0, len(vals), 2):
                r = Signal(Shape(width, self._shape.signed), name=f"sum{lvl}_{q // 2}", reset_less=True)
                m.d.sync += r.eq(vals[q] + vals[q + 1] if q + 1 < len(vals) else vals[q])
                nxt.append(r)
            vals, lvl = nxt, lvl + 1
        m.d.comb += self.o.eq(vals[0])
        return m
