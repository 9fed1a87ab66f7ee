"""The sample loader: the ``sample`` stream into one of two pixel lists, while the core works on the
other (docs/hardware.md, "Loading"). A list holds the non-zero pixels of one image as (index,
value) pairs, so the input drive and the W_0 update visit only those; the label and the ``learn``
flag (sampled at the sample's first transfer) travel with it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .plan import IDX_BITS


class Loader(wiring.Component):
    def __init__(self, *, n_in: int, input_frac: int, sample_bits: int, label_bits: int):
        self.n_in, self.fx = n_in, input_frac
        self.JW = max(1, ceil_log2(n_in))
        self.label_bits = label_bits
        super().__init__({
            "sample": In(stream.Signature(unsigned(sample_bits))),
            "learn_in": In(1),
            # the list the core works on
            "ready": Out(1), "nnz": Out(IDX_BITS + 1), "label": Out(label_bits), "learn": Out(1),
            "addr": In(self.JW),                  # pixel read address (entry e of the list)
            "pix_j": Out(self.JW), "pix_x": Out(max(input_frac, 1)),   # entry e, one cycle later
            "release": In(1),                     # the core is done with the list
        })

    def elaborate(self, platform):
        m = Module()
        JW, fx = self.JW, self.fx
        m.submodules.pixels = mem = Memory(shape=unsigned(JW + max(fx, 1)), depth=2 << JW, init=[])
        rd, wr = mem.read_port(), mem.write_port()
        full = Signal(2)
        nnz = [Signal(IDX_BITS + 1, name=f"nnz{b}") for b in range(2)]
        label = [Signal(self.label_bits, name=f"label{b}") for b in range(2)]
        learn = [Signal(name=f"learn{b}") for b in range(2)]
        wbuf, rbuf = Signal(), Signal()
        pidx = Signal(IDX_BITS + 1)
        cnt = Signal(IDX_BITS + 1)
        lrn = Signal()

        # writer: pixels of the next sample, then its label
        with m.If(~full.bit_select(wbuf, 1)):
            m.d.comb += self.sample.ready.eq(1)
            with m.If(self.sample.valid):
                with m.If(pidx < self.n_in):
                    x = self.sample.payload[:fx] if fx else Const(0, 1)
                    m.d.comb += [wr.addr.eq(Cat(cnt[:JW], wbuf)), wr.data.eq(Cat(pidx[:JW], x)), wr.en.eq(x != 0)]
                    m.d.sync += [pidx.eq(pidx + 1), cnt.eq(cnt + (x != 0))]
                    with m.If(pidx == 0):
                        m.d.sync += lrn.eq(self.learn_in)
                with m.Else():
                    for b in range(2):
                        with m.If(wbuf == b):
                            m.d.sync += [nnz[b].eq(cnt), label[b].eq(self.sample.payload),
                                         learn[b].eq(lrn)]
                    m.d.sync += [full.bit_select(wbuf, 1).eq(1), wbuf.eq(~wbuf), pidx.eq(0), cnt.eq(0)]
        # reader
        m.d.comb += [self.ready.eq(full.bit_select(rbuf, 1)),
                     self.nnz.eq(Mux2(rbuf, nnz)), self.label.eq(Mux2(rbuf, label)), self.learn.eq(Mux2(rbuf, learn)),
                     rd.addr.eq(Cat(self.addr, rbuf)),
                     self.pix_j.eq(rd.data[:JW]), self.pix_x.eq(rd.data[JW:])]
        with m.If(self.release):
            # the writer only ever fills the other buffer: the two updates touch different bits
            m.d.sync += [full.bit_select(rbuf, 1).eq(0), rbuf.eq(~rbuf)]
        return m


def Mux2(sel, pair):
    return Mux(sel, pair[1], pair[0])
