"""The EqProp core: P-lane datapath, weight/bias/state memories, update unit and controller.

Top ports (``EPCore``; ``clk``/``rst`` are the ``sync`` domain). In the Verilog, stream members
are flattened as ``<port>__payload``, ``<port>__valid``, ``<port>__ready``.

=================  ===  =========  ======================================================
port               dir  width      meaning
=================  ===  =========  ======================================================
sample             in   stream     ``in`` pixels (UQ(0, fx) LSBs, one per transfer, in
                                   order), then one transfer carrying the label
learn              in   1          sampled when a sample starts: 1 = train, 0 = inference
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

Pipeline: the controller emits one op a cycle into register A; stage B turns it into memory
addresses (the non-zero pixel list is read in A, so W_0 addresses resolve in B) and computes the
stochastic-rounding hashes; in stage C the memories' read data lands in registers (the block
RAMs' output registers); stage D does the MACs, the neuron finish or the read-modify-write of the
update. Every op reads only data written before its stage B, which the schedule guarantees (two
bubbles between steps, one after the input drive; updates visit each word once).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixedpoint import SIGN_COUNTER

from .arx_hash import arx_hash_expr
from .neuron import neuron_lane
from .plan import PIPE_DEPTH, Plan
from .update import update_lane

IDX_BITS = 14           # neuron indices (spec: 14-bit fields of the random counter)


class Kind(enum.Enum, shape=4):
    NOP = 0
    FWD = 1         # forward: P products of one row word, adder tree into lane `lane`
    FB = 2          # feedback: P products of one W^T column, one per accumulator lane
    FIN = 3         # finish a block: bias, d0, nudge, round, hard sigmoid, write states
    D0MAC = 4       # input drive: P outputs times one non-zero pixel
    D0ST = 5        # store the P input-drive accumulators
    UROW = 6        # latch a_{n+1}[i], c_{n+1}[i] for the row updates of W_n (n >= 1)
    U0ROW = 7       # latch a_1, c_1 of one block for the updates of W_0
    UW = 8          # update one word of W_n (n >= 1)
    U0 = 9          # update one word of W_0 (P outputs, one non-zero pixel)
    UB = 10         # update one word of b_n
    HRD = 11        # host read
    HWR = 12        # host write


class Access(enum.Enum, shape=3):
    READ_WEIGHT = 0
    WRITE_WEIGHT = 1
    READ_BIAS = 2
    WRITE_BIAS = 3
    READ_STATE = 4
    READ_COUNTER = 5


# Per-layer counters readable over ``access`` (op READ_COUNTER, row = id, layer = n): for weight
# layer n, as the golden ``Counters`` lists: clamps of s_(n+1), and the saturations of W_n / b_n.
LAYER_COUNTERS = ("act_low", "act_high", "update_sat", "weight_sat", "bias_sat")


ACCESS_LAYOUT = data.StructLayout({
    "op": Access, "layer": unsigned(4), "row": unsigned(IDX_BITS), "col": unsigned(IDX_BITS),
    "data": signed(32),
})

TARGET_WEIGHT, TARGET_BIAS, TARGET_STATE, TARGET_NONE, TARGET_COUNTER = 0, 1, 2, 3, 4


def _lanes(word, width, count):
    return [word[p * width:(p + 1) * width] for p in range(count)]


class EPCore(wiring.Component):
    """The whole EqProp trainer for one config (see the module docstring for the ports).

    ``weights`` / ``biases`` (optional): integer lists per layer (W_n as rows) baked in as the
    memories' initial contents; otherwise every parameter starts at 0 and is loaded over ``access``.
    ``train=False`` builds an inference-only core: no nudged phases, no update unit (``learn`` is
    ignored, ``t`` never advances).
    """

    def __init__(self, *, cfg, weights=None, biases=None, train=True):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        if not isinstance(train, bool):
            raise TypeError(f"train must be True or False, not {train!r}")
        cfg.check_fixed()
        self.train = train
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
            "t": Out(32),
            "busy": Out(1),
        }
        for name in ("cycles", "samples", "update_sat", "weight_sat", "bias_sat", "act_low",
                     "act_high", "unsettled", "cycling"):
            sig[name] = Out(32)
        super().__init__(sig)

    # ---- memory initial contents ----------------------------------------------------------
    def _w_init(self, n):
        pl, wb = self.plan, self.cfg.fixed.weight_bits
        words = [0] * pl.w_depth(n)
        if self._weights is None:
            return words
        W = self._weights[n]
        for i, row in enumerate(W):
            for j, v in enumerate(row):
                a, lane = pl.weight_addr(n, i, j)
                words[a] |= (int(v) & ((1 << wb) - 1)) << (lane * wb)
        return words

    def _b_init(self, n):
        pl, bb = self.plan, self.cfg.fixed.bias_bits
        words = [0] * pl.b_depth(n)
        if self._biases is None:
            return words
        for i, v in enumerate(self._biases[n]):
            a, lane = pl.bias_addr(n, i)
            words[a] |= (int(v) & ((1 << bb) - 1)) << (lane * bb)
        return words

    def elaborate(self, platform):
        m = Module()
        cfg, pl, f = self.cfg, self.plan, self.cfg.fixed
        P, N, s = pl.P, pl.N, pl.sizes
        wb, bb, A = f.weight_bits, f.bias_bits, f.acc_bits
        fs, fx = f.state_frac, f.input_frac
        SW = fs + 1                                   # state lane width
        one = 1 << fs
        S = pl.S                                      # words of one state slot
        stochastic = f.update_rounding == "stochastic" and self.train

        # ---- memories ---------------------------------------------------------------------
        def lane_memories(prefix, lane_bits, depth, init):
            """One memory per layer, P lanes a word, writable lane by lane: (read ports, write ports)."""
            rd, wr = [], []
            for n in range(N):
                mem = Memory(shape=unsigned(P * lane_bits), depth=max(2, depth(n)), init=init(n))
                m.submodules[f"{prefix}{n}"] = mem
                rd.append(mem.read_port())
                wr.append(mem.write_port(granularity=lane_bits))
            return rd, wr

        wrd, wwr = lane_memories("w", wb, pl.w_depth, self._w_init)
        brd, bwr = lane_memories("b", bb, pl.b_depth, self._b_init)
        m.submodules.d0 = d0mem = Memory(shape=unsigned(P * A), depth=max(2, pl.blocks(1)), init=[])
        d0rd, d0wr = d0mem.read_port(), d0mem.write_port()
        m.submodules.states = smem = Memory(shape=unsigned(P * SW), depth=4 * S, init=[])
        srd0, srd1, swr = smem.read_port(), smem.read_port(), smem.write_port(granularity=SW)
        JW = max(1, ceil_log2(s[0]))
        m.submodules.pixels = lmem = Memory(shape=unsigned(JW + fx), depth=max(2, s[0]), init=[])
        lrd, lwr = lmem.read_port(), lmem.write_port()

        # ---- op pipeline registers -------------------------------------------------------
        AW = max(1, max(ceil_log2(pl.w_depth(n) + 1) for n in range(N)) + 1)
        SAW = max(1, ceil_log2(4 * S))
        BAW = max(1, ceil_log2(max(pl.blocks(k) for k in range(1, N + 1)) + 1))
        EW = ceil_log2(s[0] + 1) + 1
        LW = max(1, ceil_log2(P))
        op_layout = data.StructLayout({
            "kind": Kind, "wl": unsigned(4), "layer": unsigned(4), "waddr": unsigned(AW),
            "sa0": unsigned(SAW), "sa1": unsigned(SAW), "swa": unsigned(SAW), "lane": unsigned(LW),
            "nvalid": unsigned(ceil_log2(P + 1)), "clear": 1, "baddr": unsigned(BAW),
            "e": unsigned(EW), "ibase": unsigned(IDX_BITS + 1), "jbase": unsigned(IDX_BITS + 1),
            "lane_i": 1, "zero": 1, "nudge": 1, "neg": 1, "lastfree": 1, "target": 3, "cid": 3,
            "hdata": signed(32), "lj": unsigned(JW), "lx": unsigned(max(fx, 1)),
        })
        opA = Signal(op_layout)
        opB = Signal(op_layout)
        opC0 = Signal(op_layout)       # the op while its memory reads complete
        opC = Signal(op_layout)        # the op in the data stage, beside the registered read data

        # Stage A: the pixel list is read so that stage B knows the pixel's index and value.
        m.d.comb += lrd.addr.eq(opA.e)
        m.d.sync += opB.eq(opA)
        # Stage B: addresses.
        lj, lx = lrd.data[:JW], lrd.data[JW:JW + fx] if fx else Const(0, 1)
        by_list = (opB.kind == Kind.D0MAC) | (opB.kind == Kind.U0)
        waddr_b = Mux(by_list, opB.waddr + lj, opB.waddr)
        for n in range(N):
            m.d.comb += wrd[n].addr.eq(waddr_b)
        for n in range(N):
            m.d.comb += brd[n].addr.eq(opB.baddr)
        m.d.comb += [d0rd.addr.eq(opB.baddr), srd0.addr.eq(opB.sa0), srd1.addr.eq(opB.sa1)]
        m.d.sync += opC0.eq(opB)
        m.d.sync += opC0.waddr.eq(waddr_b)
        with m.If(by_list):
            m.d.sync += [opC0.lj.eq(lj), opC0.lx.eq(lx)]
        # Stage C: every memory's read data goes straight into a register (the block RAMs' own
        # output registers): no logic between a RAM and the multipliers' flip-flops.
        m.d.sync += opC.eq(opC0)
        wq = [Signal(P * wb, name=f"w{n}_q") for n in range(N)]
        bq = [Signal(P * bb, name=f"b{n}_q") for n in range(N)]
        d0q, s0q, s1q = Signal(P * A), Signal(P * SW), Signal(P * SW)
        m.d.sync += [q.eq(port.data) for q, port in zip(wq + bq + [d0q, s0q, s1q], wrd + brd + [d0rd, srd0, srd1])]
        # Stochastic rounding: one hash per lane, counter (n << 28) | (i << 14) | j, registered.
        key = Signal(32)
        rnd0 = [Signal(32, name=f"rnd0_{p}") for p in range(P)]
        rnd = [Signal(32, name=f"rnd{p}") for p in range(P)]
        if stochastic:
            jb_src = Mux(opB.kind == Kind.U0, lj, opB.jbase)
            for p in range(P):
                i_p = Mux(opB.lane_i, opB.ibase + p, opB.ibase)[:IDX_BITS]
                j_p = Mux(opB.lane_i, jb_src, jb_src + p)[:IDX_BITS]
                ctr = Cat(j_p, i_p, opB.layer)
                m.d.sync += [rnd0[p].eq(arx_hash_expr(m, key, ctr, name=f"arx{p}")), rnd[p].eq(rnd0[p])]

        # ---- stage D: data -----------------------------------------------------------------
        k_is = lambda kind: opC.kind == kind  # noqa: E731
        mask = [Signal(name=f"mask{p}") for p in range(P)]
        for p in range(P):
            m.d.comb += mask[p].eq(p < opC.nvalid)
        wsel = Signal(P * wb)
        with m.Switch(opC.wl):
            for n in range(N):
                with m.Case(n):
                    m.d.comb += wsel.eq(wq[n])
        bsel = Signal(P * bb)          # bias word of layer opC.layer (updates, host)
        bfin = Signal(P * bb)          # bias word feeding layer opC.layer (b_{k-1})
        with m.Switch(opC.layer):
            for n in range(N):
                with m.Case(n):
                    m.d.comb += bsel.eq(bq[n])
        with m.Switch(opC.layer):
            for n in range(N):
                with m.Case(n + 1):
                    m.d.comb += bfin.eq(bq[n])
        wl = [v.as_signed() for v in _lanes(wsel, wb, P)]
        s0raw = _lanes(s0q, SW, P)
        s1raw = _lanes(s1q, SW, P)
        s0 = [Mux(opC.zero, 0, v) for v in s0raw]      # step 1 of the free phase reads zeros
        s0b = Mux(opC.zero, 0, s0q.word_select(opC.lane, SW))
        xop = (opC.lx << (fs - fx)) if fx else Const(0, 1)

        # MAC lanes
        acc = [Signal(signed(A), name=f"acc{p}") for p in range(P)]
        acc_eff = [Mux(opC.clear, 0, acc[p]) for p in range(P)]
        prod = []
        for p in range(P):
            operand = Signal(SW, name=f"mac_op{p}")
            with m.Switch(opC.kind):
                with m.Case(Kind.FWD):
                    m.d.comb += operand.eq(s0[p])
                with m.Case(Kind.FB):
                    m.d.comb += operand.eq(s0b)
                with m.Case(Kind.D0MAC):
                    m.d.comb += operand.eq(xop)
            pr = Signal(signed(wb + SW + 1), name=f"prod{p}")
            m.d.comb += pr.eq(Mux(mask[p], wl[p] * operand, 0))
            prod.append(pr)
        tree = Signal(signed(wb + SW + 1 + ceil_log2(P + 1)))
        m.d.comb += tree.eq(sum(prod))
        with m.If(k_is(Kind.FWD)):
            for p in range(P):
                m.d.sync += acc[p].eq(acc_eff[p] + Mux(opC.lane == p, tree, 0))
        with m.If(k_is(Kind.FB) | k_is(Kind.D0MAC)):
            for p in range(P):
                m.d.sync += acc[p].eq(acc_eff[p] + prod[p])
        m.d.comb += [d0wr.addr.eq(opC.baddr), d0wr.data.eq(Cat(*[a[:A] for a in acc_eff])),
                     d0wr.en.eq(k_is(Kind.D0ST))]

        # Neuron finish
        label = Signal(self.label_bits)
        learn_r = Signal()
        d0l = [v.as_signed() for v in _lanes(d0q, A, P)]
        bfl = [v.as_signed() for v in _lanes(bfin, bb, P)]
        new_state, lows, highs = [], [], []
        for p in range(P):
            y = Mux(opC.ibase + p == label, one, 0)
            st, lo, hi = neuron_lane(acc=acc_eff[p], bias=bfl[p], drive=Mux(opC.layer == 1, d0l[p], 0),
                                     nudge_on=opC.nudge & (opC.layer == N), nudge_neg=opC.neg,
                                     target=y, old_state=s0[p], fixed=f, beta_shift=cfg.beta_shift)
            ns = Signal(SW, name=f"state{p}")
            m.d.comb += ns.eq(st)
            new_state.append(ns)
            lows.append(lo & mask[p])
            highs.append(hi & mask[p])
        fin = k_is(Kind.FIN)
        m.d.comb += [swr.addr.eq(opC.swa), swr.data.eq(Cat(*new_state)),
                     swr.en.eq(Mux(fin, Cat(*mask), 0))]

        # Residual (settling) and prediction, both from the last free step.
        moved = Signal()       # s_T1 != s_(T1-1): the free phase has not settled
        moved2 = Signal()      # s_T1 != s_(T1-2): not a period-2 cycle either
        # s_(T1-2) is the old content of the slot the last free step writes (read on port 1);
        # for T1 == 2 it is the zero initial state.
        old2 = [Const(0, SW)] * P if cfg.T1 == 2 else s1raw
        best, best_idx, have = Signal(SW), Signal(IDX_BITS), Signal()
        with m.If(fin & opC.lastfree):
            m.d.sync += moved.eq(moved | Cat(*[mask[p] & (new_state[p] != s0[p]) for p in range(P)]).any())
            m.d.sync += moved2.eq(moved2 | Cat(*[mask[p] & (new_state[p] != old2[p]) for p in range(P)]).any())
            with m.If(opC.layer == N):
                cb, ci, ch = best, best_idx, have
                for p in range(P):
                    take = mask[p] & (~ch | (new_state[p] > cb))    # strict: lowest index wins ties
                    nb, ni, nh = Signal(SW, name=f"best{p}"), Signal(IDX_BITS, name=f"besti{p}"), Signal(name=f"have{p}")
                    m.d.comb += [nb.eq(Mux(take, new_state[p], cb)), ni.eq(Mux(take, opC.ibase + p, ci)),
                                 nh.eq(ch | take)]
                    cb, ci, ch = nb, ni, nh
                m.d.sync += [best.eq(cb), best_idx.eq(ci), have.eq(ch)]

        # Update unit: D = m1 - m2 with operands chosen by the op; g = -1 for a negative beta.
        gneg = Signal()
        if self.train:
            diffs = self._update_diffs(m, opC=opC, s0q=s0q, s1q=s1q, s0raw=s0raw, s1raw=s1raw, gneg=gneg)
        bl = [v.as_signed() for v in _lanes(bsel, bb, P)]
        is_w = (k_is(Kind.UW) | k_is(Kind.U0)) if self.train else Const(0, 1)
        is_b = k_is(Kind.UB) if self.train else Const(0, 1)
        usat_n, psat_n = [], []
        for n in range(N):
            wnew, bnew = [opC.hdata[:wb]] * P, [opC.hdata[:bb]] * P
            wus, wps, bus, bps = [Const(0, 1)], [Const(0, 1)], [Const(0, 1)], [Const(0, 1)]
            for p in range(P if self.train else 0):
                common = dict(mode=f.update_rounding, rand=rnd[p],
                              update_range=(f.update_min, f.update_max))
                v, us, ps = update_lane(diff=diffs[p], sh=pl.sh_w(n), old=wl[p],
                                        value_range=(f.weight_min, f.weight_max), **common)
                wnew[p] = v[:wb]
                wus.append(us & mask[p]), wps.append(ps & mask[p])
                v, us, ps = update_lane(diff=diffs[p], sh=pl.sh_b(n), old=bl[p],
                                        value_range=(f.bias_min, f.bias_max), **common)
                bnew[p] = v[:bb]
                bus.append(us & mask[p]), bps.append(ps & mask[p])
            here = opC.layer == n
            hw = k_is(Kind.HWR) & (opC.layer == n)
            m.d.comb += [
                wwr[n].addr.eq(opC.waddr),
                wwr[n].data.eq(Mux(is_w, Cat(*wnew), Cat(*[opC.hdata[:wb]] * P))),
                wwr[n].en.eq(Mux(is_w & here, Cat(*mask),
                                 Mux(hw & (opC.target == TARGET_WEIGHT), Const(1, 1) << opC.lane, 0))),
                bwr[n].addr.eq(opC.baddr),
                bwr[n].data.eq(Mux(is_b, Cat(*bnew), Cat(*[opC.hdata[:bb]] * P))),
                bwr[n].en.eq(Mux(is_b & here, Cat(*mask),
                                 Mux(hw & (opC.target == TARGET_BIAS), Const(1, 1) << opC.lane, 0))),
            ]
            usat_n.append((here & is_w, sum(wus), here & is_b, sum(bus)))
            psat_n.append((here & is_w, sum(wps), here & is_b, sum(bps)))

        # ---- counters ----------------------------------------------------------------------
        cnt = {name: getattr(self, name) for name in ("cycles", "samples", "update_sat", "weight_sat",
                                                      "bias_sat", "act_low", "act_high", "unsettled",
                                                      "cycling")}
        cnt_r = {name: Signal(32, name=f"cnt_{name}") for name in cnt}
        for name in cnt:
            m.d.comb += cnt[name].eq(cnt_r[name])
        upd_inc = Signal(32)
        wsat_inc = Signal(32)
        bsat_inc = Signal(32)
        m.d.comb += [
            upd_inc.eq(sum(Mux(cw, w, 0) + Mux(cb_, b, 0) for cw, w, cb_, b in usat_n)),
            wsat_inc.eq(sum(Mux(cw, w, 0) for cw, w, _, _ in psat_n)),
            bsat_inc.eq(sum(Mux(cb_, b, 0) for _, _, cb_, b in psat_n)),
        ]
        m.d.sync += [cnt_r["update_sat"].eq(cnt_r["update_sat"] + upd_inc),
                     cnt_r["weight_sat"].eq(cnt_r["weight_sat"] + wsat_inc),
                     cnt_r["bias_sat"].eq(cnt_r["bias_sat"] + bsat_inc)]
        with m.If(fin & learn_r):
            m.d.sync += [cnt_r["act_low"].eq(cnt_r["act_low"] + sum(lows)),
                         cnt_r["act_high"].eq(cnt_r["act_high"] + sum(highs))]
        # the same events per weight layer (read over ``access``)
        per = {(name, n): Signal(32, name=f"cnt_{name}_{n}") for name in LAYER_COUNTERS for n in range(N)}
        for n in range(N):
            cw, uw, cb_, ub = usat_n[n]
            m.d.sync += [
                per["update_sat", n].eq(per["update_sat", n] + Mux(cw, uw, 0) + Mux(cb_, ub, 0)),
                per["weight_sat", n].eq(per["weight_sat", n] + Mux(psat_n[n][0], psat_n[n][1], 0)),
                per["bias_sat", n].eq(per["bias_sat", n] + Mux(psat_n[n][2], psat_n[n][3], 0)),
            ]
            with m.If(fin & learn_r & (opC.layer == n + 1)):
                m.d.sync += [per["act_low", n].eq(per["act_low", n] + sum(lows)),
                             per["act_high", n].eq(per["act_high", n] + sum(highs))]
        per_sel = Signal(32)
        for (name, n), sig in per.items():
            with m.If((opC.layer == n) & (opC.cid == LAYER_COUNTERS.index(name))):
                m.d.comb += per_sel.eq(sig)

        # ---- host responses ------------------------------------------------------------------
        rsp_valid, rsp_data = Signal(), Signal(signed(32))
        m.d.comb += [self.access_rsp.valid.eq(rsp_valid), self.access_rsp.payload.eq(rsp_data)]
        with m.If(self.access_rsp.valid & self.access_rsp.ready):
            m.d.sync += rsp_valid.eq(0)
        with m.If(k_is(Kind.HRD) | k_is(Kind.HWR)):
            m.d.sync += rsp_valid.eq(1)
            with m.If(k_is(Kind.HWR)):
                m.d.sync += rsp_data.eq(0)
            with m.Else():
                with m.Switch(opC.target):
                    with m.Case(TARGET_WEIGHT):
                        m.d.sync += rsp_data.eq(wsel.word_select(opC.lane, wb).as_signed())
                    with m.Case(TARGET_BIAS):
                        m.d.sync += rsp_data.eq(bsel.word_select(opC.lane, bb).as_signed())
                    with m.Case(TARGET_STATE):
                        m.d.sync += rsp_data.eq(s0q.word_select(opC.lane, SW))
                    with m.Case(TARGET_COUNTER):
                        m.d.sync += rsp_data.eq(per_sel)
                    with m.Default():
                        m.d.sync += rsp_data.eq(0)

        # ---- controller ------------------------------------------------------------------
        self._controller(m, opA=opA, key=key, label=label, learn_r=learn_r, gneg=gneg, moved=moved, moved2=moved2,
                         have=have, best_idx=best_idx, lwr=lwr, JW=JW, cnt_r=cnt_r, rsp_valid=rsp_valid)
        return m

    def _update_diffs(self, m, *, opC, s0q, s1q, s0raw, s1raw, gneg):
        """The exact differences D of the update, one per lane (latches hold the row operands)."""
        f, P = self.cfg.fixed, self.plan.P
        SW, fx = f.state_frac + 1, f.input_frac
        k_is = lambda kind: opC.kind == kind  # noqa: E731
        ra, rc = Signal(SW), Signal(SW)
        la = [Signal(SW, name=f"la{p}") for p in range(P)]
        lc = [Signal(SW, name=f"lc{p}") for p in range(P)]
        with m.If(k_is(Kind.UROW)):
            m.d.sync += [ra.eq(s0q.word_select(opC.lane, SW)), rc.eq(s1q.word_select(opC.lane, SW))]
        with m.If(k_is(Kind.U0ROW)):
            m.d.sync += [la[p].eq(s0raw[p]) for p in range(P)] + [lc[p].eq(s1raw[p]) for p in range(P)]
        diffs = []
        for p in range(P):
            a1, a2, c1, c2 = (Signal(SW, name=f"ua{p}"), Signal(max(SW, fx, 1), name=f"ub{p}"),
                              Signal(SW, name=f"uc{p}"), Signal(max(SW, fx, 1), name=f"ud{p}"))
            with m.Switch(opC.kind):
                with m.Case(Kind.UW):
                    m.d.comb += [a1.eq(ra), a2.eq(s0raw[p]), c1.eq(rc), c2.eq(s1raw[p])]
                with m.Case(Kind.U0):
                    m.d.comb += [a1.eq(la[p]), a2.eq(opC.lx), c1.eq(lc[p]), c2.eq(opC.lx)]
                with m.Case(Kind.UB):
                    m.d.comb += [a1.eq(s0raw[p]), a2.eq(1), c1.eq(s1raw[p]), c2.eq(1)]
            d = Signal(signed(len(a1) + len(a2) + 2), name=f"diff{p}")
            m.d.comb += d.eq(Mux(gneg, c1 * c2 - a1 * a2, a1 * a2 - c1 * c2))
            diffs.append(d)
        return diffs

    def _controller(self, m, *, opA, key, label, learn_r, gneg, moved, moved2, have, best_idx, lwr, JW,
                    cnt_r, rsp_valid):
        cfg, pl, f = self.cfg, self.plan, self.cfg.fixed
        P, N, s, S, off = pl.P, pl.N, pl.sizes, pl.S, pl.state_offsets
        fx = f.input_frac
        sym = pl.symmetric

        t = Signal(32)
        m.d.comb += self.t.eq(t)
        pidx = Signal(IDX_BITS + 1)
        nnz = Signal(IDX_BITS + 1)
        sneg = Signal()
        m.d.comb += gneg.eq(sneg)
        hk, hc = Signal(32), Signal(32)
        hout = Signal(32)
        m.d.comb += hout.eq(arx_hash_expr(m, hk, hc, name="arx_key"))

        # loop counters
        ib, ibP, r, i, jb, jbP, j, jw, jl, e, il, iw = (
            Signal(IDX_BITS + 1, name=n) for n in ("ib", "ibP", "r", "i", "jb", "jbP", "j", "jw", "jl",
                                                   "e", "il", "iw"))
        wa = Signal(len(opA.waddr), name="wa_cnt")
        steps_left = Signal(range(max(cfg.T1, cfg.T2) + 1))
        rbase, wbase, pa, pb = (Signal(len(opA.sa0), name=n) for n in ("rbase", "wbase", "pa", "pb"))
        zero, nudge, neg, lastfree = Signal(), Signal(), Signal(), Signal()
        phase = Signal(2)           # 0 free, 1 nudged, 2 negative
        drain = Signal(range(PIPE_DEPTH + 1))
        abase = pl.slot_nudged * S
        cbase = (pl.slot_negative if sym else pl.slot_free) * S

        def emit(kind, **fields):
            m.d.sync += opA.kind.eq(kind)
            for name, v in fields.items():
                m.d.sync += getattr(opA, name).eq(v)

        def nv_block(k, b):
            return Mux(b == pl.blocks(k) - 1, pl.last_lanes(k), P)

        m.d.sync += opA.eq(0)          # every op starts from all-zero fields (kind NOP): no stale fields

        def enter_layer(k, b, bP):
            """Start block b (bP = b*P) of layer k in the current step."""
            m.d.sync += [ib.eq(b), ibP.eq(bP)]
            if k >= 2:
                m.d.sync += [r.eq(0), jb.eq(0), i.eq(bP), wa.eq(bP * pl.row_words(k - 1))]
                m.next = f"L{k}_FWD"
            else:
                m.d.sync += [j.eq(0), jw.eq(0), jl.eq(0), wa.eq(b)]
                m.next = f"L{k}_FB"

        def start_phase(kind):
            if kind == "free":
                m.d.sync += [steps_left.eq(cfg.T1), zero.eq(1), nudge.eq(0), neg.eq(0), phase.eq(0),
                             rbase.eq(0), wbase.eq(0), pa.eq(0), pb.eq(S), lastfree.eq(cfg.T1 == 1)]
            elif kind == "nudged":
                m.d.sync += [steps_left.eq(cfg.T2), zero.eq(0), nudge.eq(1), neg.eq(sneg), phase.eq(1),
                             rbase.eq(pl.slot_free * S), wbase.eq(2 * S), pa.eq(2 * S), pb.eq(3 * S),
                             lastfree.eq(0)]
            else:
                na, nb = pl.neg_slots
                m.d.sync += [steps_left.eq(cfg.T2), zero.eq(0), nudge.eq(1), neg.eq(1), phase.eq(2),
                             rbase.eq(pl.slot_free * S), wbase.eq(na * S), pa.eq(na * S), pb.eq(nb * S),
                             lastfree.eq(0)]
            enter_layer(1, 0, 0)

        def start_update():
            m.d.sync += [ib.eq(0), ibP.eq(0), wa.eq(0), e.eq(0)]
            m.next = "U0_B"

        def next_update_layer(n):
            """After the update of W_n: W_{n+1}, or finish."""
            if n + 1 < N:
                m.d.sync += [i.eq(0), il.eq(0), iw.eq(0), wa.eq(0)]
                m.next = f"U{n + 1}_R"
            else:
                m.d.sync += drain.eq(0)
                m.next = "FINISH"

        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        with m.If(busy):
            m.d.sync += cnt_r["cycles"].eq(cnt_r["cycles"] + 1)

        acc_in = self.access.payload
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(self.t_set):
                    m.d.sync += t.eq(self.t_value)
                with m.Elif(self.access.valid):
                    m.d.comb += self.access.ready.eq(1)
                    self._host_op(m, emit, acc_in)
                    m.next = "HOST"
                with m.Elif(self.sample.valid):
                    m.d.sync += [pidx.eq(0), nnz.eq(0), learn_r.eq(self.learn if self.train else 0), moved.eq(0), moved2.eq(0), have.eq(0)]
                    m.next = "LOAD"
            with m.State("HOST"):
                with m.If(rsp_valid & self.access_rsp.ready):
                    m.next = "IDLE"
            with m.State("LOAD"):
                m.d.comb += [busy.eq(1), self.sample.ready.eq(1)]
                with m.If(self.sample.valid):
                    with m.If(pidx < s[0]):
                        x = self.sample.payload[:fx] if fx else Const(0, 1)
                        m.d.comb += [lwr.addr.eq(nnz), lwr.data.eq(Cat(pidx[:JW], x)), lwr.en.eq(x != 0)]
                        m.d.sync += [pidx.eq(pidx + 1), nnz.eq(nnz + (x != 0))]
                    with m.Else():
                        m.d.sync += label.eq(self.sample.payload)
                        m.next = "KEY"
            with m.State("KEY"):
                m.d.comb += [busy.eq(1), hk.eq(cfg.seed), hc.eq(t)]
                m.d.sync += key.eq(hout)
                m.next = "SIGN"
            with m.State("SIGN"):
                m.d.comb += [busy.eq(1), hk.eq(key), hc.eq(SIGN_COUNTER)]
                m.d.sync += [sneg.eq(hout[0] if cfg.nudging == "random_sign" else 0),
                             ib.eq(0), e.eq(0), wa.eq(0)]
                with m.If(nnz == 0):
                    m.next = "D0_ST"
                with m.Else():
                    m.next = "D0_MAC"
            # input drive: outer blocks of layer 1, inner non-zero pixels
            with m.State("D0_MAC"):
                m.d.comb += busy.eq(1)
                emit(Kind.D0MAC, waddr=wa, e=e, nvalid=nv_block(1, ib), clear=(e == 0))
                m.d.sync += e.eq(e + 1)
                with m.If(e == nnz - 1):
                    m.next = "D0_ST"
            with m.State("D0_ST"):
                m.d.comb += busy.eq(1)
                emit(Kind.D0ST, baddr=ib, clear=(nnz == 0))
                m.d.sync += [ib.eq(ib + 1), e.eq(0), wa.eq(wa + s[0])]
                with m.If(ib == pl.blocks(1) - 1):
                    m.next = "D0_END"
                with m.Elif(nnz != 0):
                    m.next = "D0_MAC"
            with m.State("D0_END"):
                # one bubble: layer 1's first finish reads d0 after the last D0ST wrote it
                m.d.comb += busy.eq(1)
                start_phase("free")
            # one step: layers in order, each block: forward rows, feedback columns, finish
            for k in range(1, N + 1):
                if k >= 2:
                    C = pl.row_words(k - 1)
                    with m.State(f"L{k}_FWD"):
                        m.d.comb += busy.eq(1)
                        emit(Kind.FWD, wl=k - 1, waddr=wa, sa0=rbase + off[k - 1] + jb, lane=r,
                             nvalid=Mux(jb == C - 1, pl.last_lanes(k - 1), P),
                             clear=(r == 0) & (jb == 0), zero=zero)
                        m.d.sync += wa.eq(wa + 1)
                        with m.If(jb == C - 1):
                            m.d.sync += [jb.eq(0), r.eq(r + 1), i.eq(i + 1)]
                            with m.If((i == s[k] - 1) | (r == P - 1)):
                                if k < N:
                                    m.d.sync += [j.eq(0), jw.eq(0), jl.eq(0), wa.eq(ib)]
                                    m.next = f"L{k}_FB"
                                else:
                                    m.next = f"L{k}_FIN"
                        with m.Else():
                            m.d.sync += jb.eq(jb + 1)
                if k < N:
                    with m.State(f"L{k}_FB"):
                        m.d.comb += busy.eq(1)
                        emit(Kind.FB, wl=k, waddr=wa, sa0=rbase + off[k + 1] + jw, lane=jl,
                             nvalid=nv_block(k, ib), clear=(j == 0) if k == 1 else 0, zero=zero)
                        m.d.sync += [wa.eq(wa + pl.row_words(k)), j.eq(j + 1)]
                        with m.If(jl == P - 1):
                            m.d.sync += [jl.eq(0), jw.eq(jw + 1)]
                        with m.Else():
                            m.d.sync += jl.eq(jl + 1)
                        with m.If(j == s[k + 1] - 1):
                            m.next = f"L{k}_FIN"
                with m.State(f"L{k}_FIN"):
                    m.d.comb += busy.eq(1)
                    emit(Kind.FIN, layer=k, sa0=rbase + off[k] + ib, swa=wbase + off[k] + ib, sa1=wbase + off[k] + ib,
                         baddr=ib,
                         ibase=ibP, nvalid=nv_block(k, ib), zero=zero, nudge=nudge if k == N else 0,
                         neg=neg, lastfree=lastfree, clear=0)
                    with m.If(ib == pl.blocks(k) - 1):
                        if k < N:
                            enter_layer(k + 1, 0, 0)
                        else:
                            m.next = "STEP_END"
                    with m.Else():
                        enter_layer(k, ib + 1, ibP + P)
            with m.State("STEP_END"):
                # two bubbles: the next step's first read (stage B) comes after this step's last
                # write (stage D)
                m.d.comb += busy.eq(1)
                m.next = "STEP_END2"
            with m.State("STEP_END2"):
                m.d.comb += busy.eq(1)
                m.d.sync += [steps_left.eq(steps_left - 1), rbase.eq(wbase),
                             wbase.eq(Mux(wbase == pa, pb, pa)), zero.eq(0),
                             lastfree.eq((phase == 0) & (steps_left == 2))]
                with m.If(steps_left != 1):
                    enter_layer(1, 0, 0)
                if self.train:
                    with m.Elif((phase == 0) & learn_r):
                        start_phase("nudged")
                with m.Elif(phase == 0):
                    m.d.sync += drain.eq(0)
                    m.next = "FINISH"
                if self.train:
                    with m.Elif((phase == 1) & (1 if sym else 0)):
                        start_phase("negative")
                    with m.Else():
                        start_update()
            if self.train:
                self._update_states(m, emit=emit, busy=busy, nv_block=nv_block, next_update_layer=next_update_layer,
                                    c=dict(ib=ib, ibP=ibP, i=i, jb=jb, jbP=jbP, e=e, il=il, iw=iw, wa=wa, nnz=nnz),
                                    abase=abase, cbase=cbase)
            with m.State("FINISH"):
                # let the last ops leave the pipeline, then count the sample
                m.d.comb += busy.eq(1)
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == PIPE_DEPTH - 1):
                    m.d.sync += cnt_r["samples"].eq(cnt_r["samples"] + 1)
                    with m.If(learn_r):
                        m.d.sync += [t.eq(t + 1), cnt_r["unsettled"].eq(cnt_r["unsettled"] + moved),
                                     cnt_r["cycling"].eq(cnt_r["cycling"] + (moved & ~moved2 & (cfg.T1 >= 2)))]
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.comb += [busy.eq(1), self.result.valid.eq(1), self.result.payload.eq(best_idx)]
                with m.If(self.result.ready):
                    m.next = "IDLE"

    def _update_states(self, m, *, emit, busy, nv_block, next_update_layer, c, abase, cbase):
        """Controller states of the update: every weight and bias once, from the phase states."""
        pl = self.plan
        P, N, s, off = pl.P, pl.N, pl.sizes, pl.state_offsets
        ib, ibP, i, jb, jbP, e, il, iw, wa, nnz = (c[k] for k in ("ib", "ibP", "i", "jb", "jbP", "e", "il", "iw",
                                                               "wa", "nnz"))
        # update of W_0 / b_0: per block of layer 1, bias word, latch, then non-zero pixels
        with m.State("U0_B"):
            m.d.comb += busy.eq(1)
            emit(Kind.UB, layer=0, sa0=abase + off[1] + ib, sa1=cbase + off[1] + ib, baddr=ib,
                 ibase=ibP, jbase=s[0], lane_i=1, nvalid=nv_block(1, ib))
            m.next = "U0_R"
        with m.State("U0_R"):
            m.d.comb += busy.eq(1)
            emit(Kind.U0ROW, sa0=abase + off[1] + ib, sa1=cbase + off[1] + ib)
            m.d.sync += e.eq(0)
            with m.If(nnz != 0):
                m.next = "U0_W"
            with m.Elif(ib == pl.blocks(1) - 1):
                next_update_layer(0)
            with m.Else():
                m.d.sync += [ib.eq(ib + 1), ibP.eq(ibP + P), wa.eq(wa + s[0])]
                m.next = "U0_B"
        with m.State("U0_W"):
            m.d.comb += busy.eq(1)
            emit(Kind.U0, layer=0, wl=0, waddr=wa, e=e, ibase=ibP, lane_i=1, nvalid=nv_block(1, ib))
            m.d.sync += e.eq(e + 1)
            with m.If(e == nnz - 1):
                with m.If(ib == pl.blocks(1) - 1):
                    next_update_layer(0)
                with m.Else():
                    m.d.sync += [ib.eq(ib + 1), ibP.eq(ibP + P), wa.eq(wa + s[0])]
                    m.next = "U0_B"
        for n in range(1, N):
            C = pl.row_words(n)
            with m.State(f"U{n}_R"):
                m.d.comb += busy.eq(1)
                emit(Kind.UROW, layer=n, sa0=abase + off[n + 1] + iw, sa1=cbase + off[n + 1] + iw, lane=il)
                m.d.sync += [jb.eq(0), jbP.eq(0)]
                m.next = f"U{n}_W"
            with m.State(f"U{n}_W"):
                m.d.comb += busy.eq(1)
                emit(Kind.UW, layer=n, wl=n, waddr=wa, sa0=abase + off[n] + jb, sa1=cbase + off[n] + jb,
                     nvalid=Mux(jb == C - 1, pl.last_lanes(n), P), ibase=i, jbase=jbP, lane_i=0)
                m.d.sync += [wa.eq(wa + 1), jb.eq(jb + 1), jbP.eq(jbP + P)]
                with m.If(jb == C - 1):
                    m.d.sync += i.eq(i + 1)
                    with m.If(il == P - 1):
                        m.d.sync += [il.eq(0), iw.eq(iw + 1)]
                    with m.Else():
                        m.d.sync += il.eq(il + 1)
                    with m.If(i == s[n + 1] - 1):
                        m.d.sync += [ib.eq(0), ibP.eq(0)]
                        m.next = f"U{n}_B"
                    with m.Else():
                        m.next = f"U{n}_R"
            with m.State(f"U{n}_B"):
                m.d.comb += busy.eq(1)
                emit(Kind.UB, layer=n, sa0=abase + off[n + 1] + ib, sa1=cbase + off[n + 1] + ib,
                     baddr=ib, ibase=ibP, jbase=s[n], lane_i=1, nvalid=nv_block(n + 1, ib))
                m.d.sync += [ib.eq(ib + 1), ibP.eq(ibP + P)]
                with m.If(ib == pl.blocks(n + 1) - 1):
                    next_update_layer(n)

    def _host_op(self, m, emit, a):
        """Turn one access command into a host op (addresses as in ``Plan``)."""
        pl = self.plan
        P, N, s, S, off = pl.P, pl.N, pl.sizes, pl.S, pl.state_offsets
        row, col = a.row, a.col
        emit(Kind.HRD, target=TARGET_NONE, hdata=a.data)
        is_write = (a.op == Access.WRITE_WEIGHT) | (a.op == Access.WRITE_BIAS)
        with m.If(is_write):
            emit(Kind.HWR)
        with m.Switch(a.op):
            with m.Case(Access.READ_WEIGHT, Access.WRITE_WEIGHT):
                for n in range(N):
                    with m.If((a.layer == n) & (row < s[n + 1]) & (col < s[n])):
                        if n == 0:
                            emit(Kind.HRD, target=TARGET_WEIGHT, wl=0, layer=0,
                                 waddr=(row // P) * s[0] + col, lane=row % P)
                        else:
                            emit(Kind.HRD, target=TARGET_WEIGHT, wl=n, layer=n,
                                 waddr=row * pl.row_words(n) + col // P, lane=col % P)
                        with m.If(is_write):
                            emit(Kind.HWR)
            with m.Case(Access.READ_BIAS, Access.WRITE_BIAS):
                for n in range(N):
                    with m.If((a.layer == n) & (row < s[n + 1])):
                        emit(Kind.HRD, target=TARGET_BIAS, layer=n, baddr=row // P, lane=row % P)
                        with m.If(is_write):
                            emit(Kind.HWR)
            with m.Case(Access.READ_STATE):
                slots = [pl.slot_free, pl.slot_nudged, pl.slot_negative if pl.symmetric else pl.slot_nudged]
                for k in range(1, N + 1):
                    for ph, slot in enumerate(slots):
                        with m.If((a.layer == k) & (row == ph) & (col < s[k])):
                            emit(Kind.HRD, target=TARGET_STATE, zero=0,
                                 sa0=slot * S + off[k] + col // P, lane=col % P)
            with m.Case(Access.READ_COUNTER):
                with m.If((a.layer < N) & (row < len(LAYER_COUNTERS))):
                    emit(Kind.HRD, target=TARGET_COUNTER, layer=a.layer, cid=row)
