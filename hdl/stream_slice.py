"""A register slice for an ``amaranth.lib.stream``: the same stream one cycle later, with every
output (``o.valid``, ``o.payload``, ``i.ready``) from a flip-flop, so that neither side's handshake
logic is on the other's paths. Full throughput: a second register (the skid) takes the transfer the
input made in the cycle the output stalled.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamSlice(wiring.Component):
    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        main = Signal(self._shape, name="main")
        skid = Signal(self._shape, name="skid")
        main_valid, skid_valid = Signal(), Signal()
        m.d.comb += [self.o.valid.eq(main_valid), self.o.payload.eq(main), self.i.ready.eq(~skid_valid)]
        with m.If(self.o.ready | ~main_valid):          # the main register moves on
            with m.If(skid_valid):
                m.d.sync += [main.eq(skid), main_valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [main.eq(self.i.payload), main_valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):        # stalled: the input's transfer goes aside
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
