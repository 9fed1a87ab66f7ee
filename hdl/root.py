"""The root of the core: the layers 2..N that the adder tree feeds (docs/hardware.md, "Root").

The root holds the biases b_1..b_(N-1) and the states of layers 2..N. It

* reads the broadcast operands (s_(k+1)[m] for the lanes' feedback, a_(n+1)[m] and c_(n+1)[m] for
  their updates) at depth 1, registered into the record at depth 3;
* finishes one neuron a cycle from the adder tree's output (depth DT): accumulate over the lanes'
  groups (DT), + bias, nudge and rounding terms (DT+1), round and clamp (DT+2), state write, the
  copy to the owning lane, settling flags and the running argmax (DT+3);
* updates its biases (one a cycle, its own hash: R at 10, write at 14);
* counts events (the lanes' flag trees and its own) and answers host accesses.

Fixed point as in the lanes (docs/fixed-point.md): exact sums, ``state_rounding`` then clamp to
[0, 1]; the nudge is sigma * ((y - s) << (fw - kb)); bias updates round by ``update_rounding``,
saturate the update, then the bias. Nothing wraps.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqfpga.golden.fixedpoint import BIAS_INDEX

from .arx_hash import arx_hash_pipeline, hash_counter, hash_piece
from .delay import Delays
from .fixed import round_offset, saturate
from .ops import LANE_TARGETS, Kind, Target, Widths, op_layout
from .plan import (IDX_BITS, LANE_UPDATE_FLAGS, N_SLOTS, ROOT_BIAS_WRITE, ROOT_STATE_WRITE,
                   ROOT_TERMS_READ, Plan)

# Per-layer counters readable over ``access`` (op READ_COUNTER, row = id, layer = n): for weight
# layer n, as the golden ``Counters`` lists: clamps of s_(n+1), and the saturations of W_n / b_n.
LAYER_COUNTERS = ("act_low", "act_high", "update_sat", "weight_sat", "bias_sat")


class Root(wiring.Component):
    def __init__(self, plan: Plan, *, biases=None, train: bool = True):
        self.pl, self.train, self.w = plan, train, Widths(plan)
        self._biases = biases
        f = plan.cfg.fixed
        CW = plan.LT + 1
        SW = self.w.SW
        super().__init__({
            "op": In(op_layout(self.w)),        # the controller's op register (depth 1)
            "bval": Out(SW), "bval2": Out(SW),  # broadcast operands, to the record register (comb, depth 2)
            "cp_en": Out(1), "cp_lane": Out(self.w.lane), "cp_addr": Out(self.w.lsa), "cp_val": Out(SW),
            "tree": In(signed(plan.acc_width)),     # the adder tree's output (depth DT)
            "lo": In(CW), "hi": In(CW), "mv": In(CW), "mv2": In(CW),   # lane flag counts (depth DL + 8 + LT)
            "usat": In(CW), "psat": In(CW),     # (depth DL + 14 + LT)
            "label": In(IDX_BITS), "learn": In(1), "gneg": In(1), "key": In(32),
            "start": In(1),                     # a sample starts: clear the settling flags
            "best": Out(IDX_BITS), "moved": Out(1), "moved2": Out(1),
            "rsp_valid": Out(1), "rsp_data": Out(signed(32)), "rsp_ready": In(1),
            **{name: Out(32) for name in LAYER_COUNTERS},
        })

    def _b_init(self):
        pl, bb = self.pl, self.pl.cfg.fixed.bias_bits
        words = [0] * max(2, pl.SR)
        if self._biases is not None:
            off = pl.root_state_offsets
            for k in pl.root_layers:
                for i, v in enumerate(self._biases[k - 1]):
                    words[off[k] + i] = int(v) & ((1 << bb) - 1)
        return words

    def elaborate(self, platform):
        m = Module()
        pl, W = self.pl, self.w
        cfg, f = pl.cfg, pl.cfg.fixed
        N, DT, DL, LT = pl.N, pl.DT, pl.DL, pl.LT
        bb, A, SW = f.bias_bits, pl.acc_width, W.SW
        fs, fw, fb = f.state_frac, f.weight_frac, f.bias_frac
        one = 1 << fs
        train = self.train
        stochastic = train and f.update_rounding == "stochastic"

        # pipeline registers carry data and op records: no reset (a held reset flushes them with
        # NOPs, as the lanes' do); the counters, flags and the response keep theirs. The root's
        # delays are short and few: registers only.
        delay = Delays(m, "rdl", ram=False)
        reg = delay.reg

        ops = {1: self.op}

        def op(d):
            """The op at depth d (a shift register of the op record)."""
            for k in range(2, d + 1):
                if k not in ops:
                    ops[k] = reg(ops[k - 1], f"rop{k}", self.op.shape())
            return ops[d]

        def early(d, fn, name):
            """``fn(op(d))`` at depth d, decoded from op(d - 1) and registered: the field compares
            stay off the paths into the counters' adders (the P = 64 netlist had 6 LUT levels there)."""
            return reg(fn(op(d - 1)), name, 1)

        # ---- memories --------------------------------------------------------------------------
        m.submodules.st = smem = Memory(shape=unsigned(SW), depth=max(2, N_SLOTS * pl.SR), init=[])
        p_ra, p_rc, p_o1, p_o2 = (smem.read_port() for _ in range(4))
        swr = smem.write_port()
        m.submodules.bias = bmem = Memory(shape=unsigned(bb), depth=max(2, pl.SR), init=self._b_init())
        p_b, p_bt = bmem.read_port(), bmem.read_port()
        bwr = bmem.write_port()

        # ---- broadcast operands (1 -> 2 -> record at 3) -----------------------------------------
        o1 = op(1)
        m.d.comb += [p_ra.addr.eq(o1.ra), p_rc.addr.eq(o1.rc), p_b.addr.eq(o1.rb)]
        o2 = op(2)
        m.d.comb += [self.bval.eq(Mux(o2.zero_op, 0, p_ra.data)), self.bval2.eq(p_rc.data)]
        a3, c3 = reg(p_ra.data, "ra3"), reg(p_rc.data, "rc3")
        bq3 = reg(p_b.data.as_signed(), "rb3")

        # ---- finish of root-layer neurons ------------------------------------------------------
        oT = op(DT + ROOT_TERMS_READ)           # DT - 3: read bias and old states
        m.d.comb += [p_bt.addr.eq(oT.rb), p_o1.addr.eq(oT.rsa), p_o2.addr.eq(oT.rsb)]
        oM = op(DT - 2)                         # the op whose read data is here (read at DT - 3)
        old1 = reg(Mux(oM.zero, 0, p_o1.data), "old1_m1")          # visible DT - 1
        old2 = reg(Mux(oM.zero2, 0, p_o2.data), "old2_m1")
        bT = reg(p_bt.data.as_signed(), "bias_m1")
        r_s = (1 << fw) >> 1 if f.state_rounding == "nearest" else 0
        oD = op(DT - 1)
        tb = reg((bT << (fw + fs - fb)) + r_s, "fin_bias")                # visible DT
        y = Mux(oD.i == self.label, one, 0)
        nud_on = oD.nudge & (oD.layer == N)
        nud = reg(Mux(nud_on, Mux(oD.neg, old1 - y, y - old1), 0), "fin_nudge", signed(SW + 2))
        terms = reg(tb + (nud << (fw - cfg.beta_shift)), "fin_terms")     # visible DT + 1
        o0 = op(DT)
        racc = Signal(signed(A), name="racc", reset_less=True)
        with m.If(o0.kind == Kind.FWD):
            m.d.sync += racc.eq(Mux(o0.clear, 0, racc) + self.tree)
        total = reg(racc + terms, "fin_total")                             # visible DT + 2
        pre = total >> fw
        lo, hi = pre < 0, pre > one
        oF = op(DT + 2)
        fin2 = (oF.kind == Kind.FWD) & oF.last
        state = reg(Mux(lo, 0, Mux(hi, one, pre))[:SW], "fin_state", unsigned(SW))   # visible DT + 3
        assert ROOT_STATE_WRITE == 3
        oS = op(DT + 3)
        fin3 = (oS.kind == Kind.FWD) & oS.last
        m.d.comb += [swr.addr.eq(oS.rsb), swr.data.eq(state), swr.en.eq(fin3)]
        # the copy into the owning lane (middle layers): into the record register at this cycle
        if list(pl.middle_layers):
            m.d.comb += [self.cp_en.eq(fin3 & (oS.layer < N)), self.cp_lane.eq(oS.lane),
                         self.cp_addr.eq(oS.sb), self.cp_val.eq(state)]
        o1_3, o2_3 = delay(old1, 4, "old1"), delay(old2, 4, "old2")
        # settling flags and argmax, from the last free step
        moved, moved2 = Signal(), Signal()
        m.d.comb += [self.moved.eq(moved), self.moved2.eq(moved2)]
        best_v = Signal(SW, reset_less=True)
        best_i = Signal(IDX_BITS, reset_less=True)
        m.d.comb += self.best.eq(best_i)
        with m.If(fin3 & oS.lastfree):
            with m.If(state != o1_3):
                m.d.sync += moved.eq(1)
            with m.If(state != o2_3):
                m.d.sync += moved2.eq(1)
            with m.If((oS.layer == N) & ((oS.i == 0) | (state > best_v))):
                m.d.sync += [best_v.eq(state), best_i.eq(oS.i)]
        # the lanes' flags are set by the last free step's finishes only
        with m.If(self.mv != 0):
            m.d.sync += moved.eq(1)
        with m.If(self.mv2 != 0):
            m.d.sync += moved2.eq(1)
        with m.If(self.start):
            m.d.sync += [moved.eq(0), moved2.eq(0)]

        # ---- counters ------------------------------------------------------------------------------
        per = {(name, n): Signal(32, name=f"cnt_{name}_{n}") for name in LAYER_COUNTERS for n in range(N)}
        for name in LAYER_COUNTERS:         # the sums registered: their adders stay off the link's paths
            m.d.sync += getattr(self, name).eq(sum(per[name, n] for n in range(N))[:32])
        lo4, hi4 = reg(fin2 & lo, "lo_r"), reg(fin2 & hi, "hi_r")
        in_layer = {k: early(DT + 3, lambda o, k=k: o.layer == k, f"cnt_layer{k}") for k in pl.root_layers}
        with m.If(self.learn):
            # the lanes' clamps are layer 1's (weight layer 0); the root's are its layer's
            m.d.sync += [per["act_low", 0].eq(per["act_low", 0] + self.lo),
                         per["act_high", 0].eq(per["act_high", 0] + self.hi)]
            for k in pl.root_layers:
                with m.If(in_layer[k]):
                    m.d.sync += [per["act_low", k - 1].eq(per["act_low", k - 1] + lo4),
                                 per["act_high", k - 1].eq(per["act_high", k - 1] + hi4)]
        if train:
            rb_us, rb_ps = self._bias_update(m, op=op, reg=reg, delay=delay, a3=a3, c3=c3, bq3=bq3, bwr=bwr,
                                             stochastic=stochastic)
            dU = DL + LANE_UPDATE_FLAGS + LT     # the lanes' update flags
            for n in range(N):                   # the root's: registered at 14 (ROOT_BIAS_WRITE)
                lw = early(dU, (lambda o: o.kind == Kind.U0) if n == 0 else
                           (lambda o, n=n: (o.kind == Kind.UWC) & (o.wl == n)), f"cnt_w{n}")
                lb = early(dU, lambda o: o.kind == Kind.U0B, "cnt_b0") if n == 0 else Const(0, 1)
                rb = (early(ROOT_BIAS_WRITE, lambda o, n=n: (o.kind == Kind.UBR) & (o.layer == n), f"cnt_rb{n}")
                      if n >= 1 else Const(0, 1))
                # the narrow terms summed first: one 32-bit adder a counter
                m.d.sync += [
                    per["update_sat", n].eq(per["update_sat", n] + (Mux(lw | lb, self.usat, 0) + Mux(rb, rb_us, 0))),
                    per["weight_sat", n].eq(per["weight_sat", n] + Mux(lw, self.psat, 0)),
                    per["bias_sat", n].eq(per["bias_sat", n] + (Mux(lb, self.psat, 0) + Mux(rb, rb_ps, 0))),
                ]
        else:
            oW = op(ROOT_BIAS_WRITE)
            hw = (oW.kind == Kind.HWR) & (oW.target == Target.ROOT_BIAS)
            m.d.comb += [bwr.addr.eq(oW.rb), bwr.data.eq(oW.hdata[:bb]), bwr.en.eq(hw)]

        # ---- host responses --------------------------------------------------------------------------
        oH = op(3)
        hold = Signal(signed(32), name="rsp_hold", reset_less=True)
        # the counter's one-hot select decoded a cycle early: an OR of ANDs, no compare chain
        picks = [Mux(early(3, lambda o, n=n, c=LAYER_COUNTERS.index(name): (o.layer == n) & (o.cid == c),
                           f"cnt_pick_{name}_{n}"), sig, 0) for (name, n), sig in per.items()]
        with m.If((oH.kind == Kind.HRD) | (oH.kind == Kind.HWR)):
            with m.Switch(oH.target):
                with m.Case(Target.ROOT_BIAS):
                    m.d.sync += hold.eq(bq3)
                with m.Case(Target.ROOT_STATE):
                    m.d.sync += hold.eq(a3)
                with m.Case(Target.COUNTER):
                    m.d.sync += hold.eq(reduce(operator.or_, picks))
                with m.Default():
                    m.d.sync += hold.eq(0)
        oTr = op(DT)
        with m.If((oTr.kind == Kind.HRD) & ((oTr.target == LANE_TARGETS[0]) | (oTr.target == LANE_TARGETS[1])
                                            | (oTr.target == LANE_TARGETS[2]))):
            m.d.sync += hold.eq(self.tree)
        oR = op(pl.response_depth)
        with m.If(self.rsp_valid & self.rsp_ready):
            m.d.sync += self.rsp_valid.eq(0)
        with m.If((oR.kind == Kind.HRD) | (oR.kind == Kind.HWR)):
            m.d.sync += [self.rsp_valid.eq(1), self.rsp_data.eq(Mux(oR.kind == Kind.HWR, 0, hold))]
        return m

    def _bias_update(self, m, *, op, reg, delay, a3, c3, bq3, bwr, stochastic):
        """UBR: D = sigma (a - c) (4), R (10), + offset (11), shift (12), saturate (13), add and
        saturate, write (14); returns the (update, bias) saturation flags at 15."""
        pl, f = self.pl, self.pl.cfg.fixed
        N, bb = pl.N, f.bias_bits
        o1 = op(1)
        if stochastic:
            ctr = Signal(32, name="rb_ctr")
            for n in range(1, N):       # the bias of neuron i: (u, v) = (i, BIAS_INDEX)
                with m.If(o1.layer == n):
                    m.d.comb += ctr.eq(hash_counter(n, o1.i, BIAS_INDEX, pl.sh_b(n)))
            rnd = arx_hash_pipeline(m, self.key, reg(ctr, "rb_ctr2"), name="rarx", per_stage=1,
                                    reset_less=True)   # visible 10
        else:
            rnd = None
        d4 = reg(Mux(self.gneg, c3 - a3, a3 - c3), "rb_d4", signed(f.state_frac + 3))
        d10 = delay(d4, 6, "rb_d")
        o10 = op(10)
        shs = [(n, pl.sh_b(n)) for n in range(1, N)]
        max_sh = max([0] + [sh for _, sh in shs])
        t11 = Signal(signed(len(d10) + 1 + max_sh), name="rb_t11", reset_less=True)
        for n, sh in shs:
            with m.If(o10.layer == n):
                mm = max(sh, 0)
                piece = hash_piece(rnd, o10.i[:2], mm) if rnd is not None and mm > 0 else None   # i mod S
                m.d.sync += t11.eq(d10 + round_offset(mm, f.update_rounding, piece))
        o11 = op(11)
        v12 = Signal(signed(len(t11) + max([0] + [-sh for _, sh in shs])), name="rb_v12", reset_less=True)
        for n, sh in shs:
            with m.If(o11.layer == n):
                m.d.sync += v12.eq(t11 >> sh if sh > 0 else t11 << -sh)
        dlt, us = saturate(v12, f.update_min, f.update_max)
        d13 = reg(dlt, "rb_d13", signed(f.update_bits))
        us13 = reg(us, "rb_us13")
        old13 = delay(bq3, 10, "rb_old")
        nv, ps = saturate(old13 + d13, f.bias_min, f.bias_max)
        o13 = op(13)
        upd13 = o13.kind == Kind.UBR
        hw13 = (o13.kind == Kind.HWR) & (o13.target == Target.ROOT_BIAS)
        new14 = reg(Mux(hw13, o13.hdata, nv), "rb_new14", signed(max(bb, len(o13.hdata))))
        en14 = reg(upd13 | hw13, "rb_en14")
        o14 = op(ROOT_BIAS_WRITE)
        m.d.comb += [bwr.addr.eq(o14.rb), bwr.data.eq(new14[:bb]), bwr.en.eq(en14)]
        return reg(upd13 & us13, "rb_us14"), reg(upd13 & ps, "rb_ps14")

