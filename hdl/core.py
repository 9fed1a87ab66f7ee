"""The EqProp core: P lanes that own their neurons, two registered trees, a root and a controller.

Top ports (``EPCore``; ``clk``/``rst`` are the ``sync`` domain). In the Verilog, stream members
are flattened as ``<port>__payload``, ``<port>__valid``, ``<port>__ready``.

=================  ===  =========  ======================================================
port               dir  width      meaning
=================  ===  =========  ======================================================
sample             in   stream     ``in`` pixels (UQ(0, fx) LSBs, one per transfer, in
                                   order), then one transfer carrying the label; taken
                                   into a second pixel list while a sample runs
learn              in   1          sampled at a sample's first transfer: 1 = train,
                                   0 = inference
result             out  stream     the prediction (argmax of the free output, lowest
                                   index wins ties), once per sample, after its update
access             in   stream     host access (``ACCESS_LAYOUT``): op 0/1 read/write
                                   weight W_layer[row][col], 2/3 read/write bias
                                   b_layer[row], 4 read state s_layer[col] of phase row
                                   (0 free, 1 nudged, 2 negative), 5 read per-layer
                                   counter ``LAYER_COUNTERS[row]`` of weight layer
                                   ``layer`` (as the golden ``Counters`` lists); served
                                   when idle, one response per command
access_rsp         out  stream     signed 32: the value read (writes answer with 0)
t_set, t_value     in   1, 32      load the sample counter t (keys the random source), idle
seed               in   32         the random seed: key = H(seed, t) (a run-time value)
t                  out  32         the sample counter (trained samples)
busy               out  1          a sample is being processed
cycles             out  32         cycles spent processing samples
samples            out  32         samples processed (trained or not)
update_sat         out  32         rounded updates that saturated (weights and biases)
weight_sat         out  32         weights saturated after their update
bias_sat           out  32         biases saturated after their update
act_low, act_high  out  32         hard-sigmoid clamps at 0 / at 1 (training samples);
                                   these and the saturations are summed over layers
                                   (per layer: ``access`` op 5)
unsettled          out  32         training samples whose free phase had not settled
cycling            out  32         ...of which s_T1 == s_(T1-2) (integer period-2 cycle)
=================  ===  =========  ======================================================

Structure (docs/hardware.md): the ``Controller`` emits one op a cycle (depth 1, ``hdl.plan``); the
root reads the broadcast operands and the loader the pixel list (1 -> 2); the op record is
registered at depth 3 and goes down the ``Broadcast`` tree to the ``Lane`` s (depth DL); their
products come back up the ``SumTree`` to the ``Root`` (depth DT), their flags up small popcount
trees. Parts: hdl/controller.py, hdl/loader.py, hdl/lane.py, hdl/trees.py, hdl/root.py, hdl/ops.py.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from eqfpga.golden.config import EPConfig

from .controller import ACCESS_LAYOUT, Access, Controller
from .lane import Lane
from .loader import Loader
from .local_reset import in_local_domain
from .delay import Delays
from .ops import Widths, delay_late_fields, record_layout, weight_base
from .plan import BROADCAST_LEAF, Plan
from .root import LAYER_COUNTERS, Root
from .stream_slice import StreamSlice
from .trees import Broadcast, SumTree

__all__ = ["EPCore", "ACCESS_LAYOUT", "Access", "LAYER_COUNTERS"]

COUNTER_PORTS = ("cycles", "samples", "update_sat", "weight_sat", "bias_sat", "act_low", "act_high",
                 "unsettled", "cycling")


class EPCore(wiring.Component):
    """The whole EqProp trainer for one config (see the module docstring for the ports).

    ``weights`` / ``biases`` (optional): integer lists per layer (W_n as rows) baked in as the
    memories' initial contents; otherwise every parameter starts at 0 and is loaded over ``access``.
    ``train=False`` builds an inference-only core: no nudged phases, no update datapaths (``learn``
    is ignored, ``t`` never advances).
    """

    def __init__(self, *, cfg, weights=None, biases=None, train=True, local_resets=False):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        if not isinstance(train, bool):
            raise TypeError(f"train must be True or False, not {train!r}")
        cfg.check_hardware()
        self.train, self.local_resets = train, bool(local_resets)
        self.cfg, self.plan = cfg, Plan(cfg)
        f = cfg.fixed
        n_out = cfg.sizes[-1]
        self.label_bits = max(1, ceil_log2(n_out))
        self.sample_bits = max(f.input_frac, self.label_bits, 1)
        self._weights, self._biases = weights, biases
        sig = {
            "sample": In(stream.Signature(unsigned(self.sample_bits))),
            "learn": In(1),
            "result": Out(stream.Signature(unsigned(self.label_bits))),
            "access": In(stream.Signature(ACCESS_LAYOUT)),
            "access_rsp": Out(stream.Signature(signed(32))),
            "t_set": In(1),
            "t_value": In(32),
            "seed": In(32),
            "t": Out(32),
            "busy": Out(1),
        }
        for name in COUNTER_PORTS:
            sig[name] = Out(32)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        pl, f = self.plan, self.cfg.fixed
        P, A = pl.P, pl.acc_width
        W = Widths(pl)

        # local_resets (the board top): each block with a reset gets a reset register of its own
        # (hdl/local_reset.py); the rest of the core has no reset
        local = (lambda name, e: in_local_domain(m, name, e)) if self.local_resets else (lambda name, e: e)
        ld = Loader(n_in=pl.sizes[0], input_frac=f.input_frac, sample_bits=self.sample_bits,
                    label_bits=self.label_bits)
        ct = Controller(pl, train=self.train, label_bits=self.label_bits, jw=ld.JW)
        rt = Root(pl, biases=self._biases, train=self.train)
        m.submodules.loader = ld = local("rst_loader", ld)
        m.submodules.ctrl = ct = local("rst_ctrl", ct)
        m.submodules.root = rt = local("rst_root", rt)
        # the host side's streams and t_set through registers: the link's state machine drives them,
        # and its decisions stay off the controller's and the loader's paths
        # (``learn`` travels with each transfer, as the loader samples it at a sample's first)
        m.submodules.sample_in = sample_in = local("rst_sample_in", StreamSlice(data.StructLayout(
            {"x": unsigned(self.sample_bits), "learn": 1})))
        m.submodules.access_in = access_in = local("rst_access_in", StreamSlice(ACCESS_LAYOUT))
        m.d.comb += [sample_in.i.valid.eq(self.sample.valid), self.sample.ready.eq(sample_in.i.ready),
                     sample_in.i.payload.x.eq(self.sample.payload), sample_in.i.payload.learn.eq(self.learn),
                     ld.sample.valid.eq(sample_in.o.valid), sample_in.o.ready.eq(ld.sample.ready),
                     ld.sample.payload.eq(sample_in.o.payload.x)]
        wiring.connect(m, wiring.flipped(self.access), access_in.i)
        wiring.connect(m, access_in.o, ct.access)
        # registers without a reset: the link holds t_set at 0 in reset; op2 and the record carry
        # the controller's op, a NOP in reset (the lanes' flush)
        t_set, t_value = Signal(reset_less=True), Signal(32, reset_less=True)
        m.d.sync += [t_set.eq(self.t_set), t_value.eq(self.t_value)]
        wiring.connect(m, ct.result, wiring.flipped(self.result))
        m.d.comb += [
            ld.learn_in.eq(sample_in.o.payload.learn), ct.ready.eq(ld.ready), ct.nnz.eq(ld.nnz), ct.label_in.eq(ld.label),
            ct.learn_in.eq(ld.learn), ld.addr.eq(ct.pix_addr), ld.release.eq(ct.release),
            ct.t_set.eq(t_set), ct.t_value.eq(t_value), ct.seed.eq(self.seed),
            ct.best.eq(rt.best), ct.moved.eq(rt.moved), ct.moved2.eq(rt.moved2),
            rt.op.eq(ct.op), rt.label.eq(ct.label), rt.learn.eq(ct.learn), rt.gneg.eq(ct.gneg),
            rt.key.eq(ct.key), rt.start.eq(ct.start),
            self.access_rsp.valid.eq(rt.rsp_valid), self.access_rsp.payload.eq(rt.rsp_data),
            rt.rsp_ready.eq(self.access_rsp.ready), ct.rsp_valid.eq(rt.rsp_valid),
            ct.rsp_ready.eq(self.access_rsp.ready),
            self.t.eq(ct.t), self.busy.eq(ct.busy),
        ]
        for name in ("cycles", "samples", "unsettled", "cycling"):
            m.d.comb += getattr(self, name).eq(getattr(ct, name))
        for name in LAYER_COUNTERS:
            m.d.comb += getattr(self, name).eq(getattr(rt, name))

        # the record (depth 3): the op, the pixel of the list, the root's operands and state copy
        op2 = Signal.like(ct.op, name="op2", reset_less=True)
        m.d.sync += op2.eq(ct.op)
        pj2 = Signal.like(ld.pix_j, name="pix_j2", reset_less=True)
        px2 = Signal.like(ld.pix_x, name="pix_x2", reset_less=True)
        m.d.sync += [pj2.eq(ld.pix_j), px2.eq(ld.pix_x)]
        wbase = weight_base(m, pl, op2.wl)      # the op's address within its layer -> the lanes' memory
        rec = Signal(record_layout(W), name="record", reset_less=True)
        for name in record_layout(W).members:
            if name in op2.shape().members:
                m.d.sync += getattr(rec, name).eq(getattr(op2, name))
        m.d.sync += [
            rec.waddr.eq(Mux(op2.pixel, op2.waddr + pj2, op2.waddr + wbase)),
            rec.x.eq(Mux(op2.pixel, px2, 0)),
            rec.idx.eq(Mux(op2.pixel, pj2, op2.idx)),
            rec.bval.eq(rt.bval), rec.bval2.eq(rt.bval2),
            rec.cp_en.eq(rt.cp_en), rec.cp_lane.eq(rt.cp_lane), rec.cp_addr.eq(rt.cp_addr), rec.cp_val.eq(rt.cp_val),
        ]
        m.submodules.bcast = bc = Broadcast(record_layout(W), P)
        m.d.comb += bc.i.eq(delay_late_fields(m, rec))     # the lanes' late fields, delayed once
        # the key goes to the lanes that hash (one in hash_share), the sign to every lane
        # (the key's leaves serve as many lanes as the record's: BROADCAST_LEAF / S hashing lanes)
        S = pl.hash_share
        m.submodules.bkey = bk = Broadcast(unsigned(32), -(-P // S), leaf=max(1, BROADCAST_LEAF // S))
        m.submodules.bgneg = bg = Broadcast(unsigned(1), P)
        key = Delays(m, ram=False)(ct.key, bg.levels - bk.levels, "key_pad")   # the sign's latency (the guards)
        m.d.comb += [bk.i.eq(key), bg.i.eq(ct.gneg)]

        m.submodules.tree = tree = SumTree(signed(A), P, grow=False)
        flags = {}
        for name in ("lo", "hi", "mv", "mv2", "usat", "psat"):
            m.submodules[f"{name}_tree"] = flags[name] = SumTree(unsigned(1), P)
            m.d.comb += getattr(rt, name).eq(flags[name].o)
        m.d.comb += rt.tree.eq(tree.o)
        lanes = []
        for p in range(P):
            m.submodules[f"lane{p}"] = ln = Lane(pl, p, weights=self._weights, biases=self._biases, train=self.train)
            m.d.comb += [ln.rec.eq(bc.o[p]), ln.gneg.eq(bg.o[p]),
                         tree.i[p].eq(ln.tree)]
            for name, t in flags.items():
                m.d.comb += t.i[p].eq(getattr(ln, name))
            lanes.append(ln)
        for p, ln in enumerate(lanes):       # one hash per hash_share lanes (docs/fixed-point.md)
            if p % S:
                m.d.comb += ln.rnd_in.eq(lanes[p - p % S].rnd_out)
            else:
                m.d.comb += ln.key.eq(bk.o[p // S])
        return m
