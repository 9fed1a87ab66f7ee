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
seed               in   32         the random source's seed: sample t's key is H(seed, t)
                                   (stochastic rounding, random sign), computed in the
                                   KEY state; hold it while ``busy`` (a runtime value:
                                   the link's seed register drives it, not the config)
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

Pipeline (depths in ``eqfpga.hdl.plan``; an op emitted in cycle e is at depth d in cycle e + d and
travels with its record, so every stage knows what it works on): the controller emits one op a
cycle into register A (1), reading the non-zero pixel list at the same time; stage B (2) drives
every read address from registers (plus the pixel index for W_0) and forms the P hash counters;
the read data lands in registers at C (4). MACs: operands registered (5), products (6), adder tree
16 -> 4 (7) and 4 -> 1 (8), accumulate at 8. Neuron finish: the terms beside the accumulator (d0,
bias, nudge, rounding offset) are summed in 4-7, acc + terms (8 -> 9), round and clamp (9 -> 10),
state write at 10; the residual, the argmax (one level of a max tree a stage) and the clamp counters
follow. Update: operands (5), products (6), D (7); the hash runs one ARX round a stage from B and
delivers R at 11; D + R (11), shift (12), saturate the update (13), add and saturate the parameter
(14), write (15), saturation counters at 16. Every op reads only data written before its read
(depth 2), which the schedule guarantees: STEP_BUBBLES = 8 bubbles between steps, D0_BUBBLES = 5
after the input drive, DRAIN cycles before a sample ends; updates visit each word once. Host
commands answer when their op reaches the parameter write (15), so a write lands before its answer.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from eqfpga.golden.config import EPConfig
from eqfpga.golden.fixedpoint import HASH_ROUNDS, SIGN_COUNTER

from .arx_hash import arx_hash_pipeline, arx_round
from .fixed import round_offset, saturate
from .plan import (ACC_DEPTH, D0_BUBBLES, D0_WRITE_DEPTH, DATA_DEPTH, HASH_DEPTH, HASH_PER_STAGE, KEY_CYCLES,
                   READ_DEPTH, STATE_WRITE_DEPTH, STEP_BUBBLES, UPDATE_WRITE_DEPTH, Plan)

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
            "seed": In(32),
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
        fs, fx, fw, fb = f.state_frac, f.input_frac, f.weight_frac, f.bias_frac
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
            # set in stage B: valid lanes, one-hot lane, lanes holding the label's neuron
            "mask": unsigned(P), "lsel": unsigned(P), "ysel": unsigned(P),
        })
        opA = Signal(op_layout)
        # op[d]: the op at depth d (A = 1, B = 2, 3 while the memory reads complete, C = 4, ...)
        op = {1: opA}
        for d in range(2, pl.last_depth + 1):
            op[d] = Signal(op_layout, name=f"op{d}")
        for d in range(4, pl.last_depth + 1):
            m.d.sync += op[d].eq(op[d - 1])
        opB, opC = op[READ_DEPTH], op[DATA_DEPTH]

        def reg(v, name, shape=None):
            r = Signal(shape if shape is not None else Value.cast(v).shape(), name=name)
            m.d.sync += r.eq(v)
            return r

        def delay(v, n, name):
            for k in range(n):
                v = reg(v, f"{name}_d{k}")
            return v

        label = Signal(self.label_bits)
        learn_r = Signal()

        # Stage A: the pixel list was read at emission (address: the controller's pixel counter),
        # its data lands in registers here, so stage B only adds the pixel index to a register.
        m.d.sync += opB.eq(opA)
        m.d.sync += [opB.lj.eq(lrd.data[:JW]), opB.lx.eq(lrd.data[JW:JW + fx] if fx else 0)]
        # Stage B: addresses.
        by_list = (opB.kind == Kind.D0MAC) | (opB.kind == Kind.U0)
        waddr_b = Mux(by_list, opB.waddr + opB.lj, opB.waddr)
        for n in range(N):
            m.d.comb += wrd[n].addr.eq(waddr_b)
        for n in range(N):
            m.d.comb += brd[n].addr.eq(opB.baddr)
        m.d.comb += [d0rd.addr.eq(opB.baddr), srd0.addr.eq(opB.sa0), srd1.addr.eq(opB.sa1)]
        m.d.sync += op[3].eq(opB)
        m.d.sync += [op[3].waddr.eq(waddr_b),
                     op[3].mask.eq(Cat(*[p < opB.nvalid for p in range(P)])),
                     op[3].lsel.eq(Cat(*[opB.lane == p for p in range(P)])),
                     op[3].ysel.eq(Cat(*[opB.ibase + p == label for p in range(P)]))]
        # Stage C: every memory's read data goes straight into a register: no logic between a
        # RAM and a flip-flop.
        wq = [Signal(P * wb, name=f"w{n}_q") for n in range(N)]
        bq = [Signal(P * bb, name=f"b{n}_q") for n in range(N)]
        d0q, s0q, s1q = Signal(P * A), Signal(P * SW), Signal(P * SW)
        m.d.sync += [q.eq(port.data) for q, port in zip(wq + bq + [d0q, s0q, s1q], wrd + brd + [d0rd, srd0, srd1])]

        # Stochastic rounding: one hash per lane, counter (n << 28) | (i << 14) | j formed in stage
        # B, then one ARX round a stage: the random word is ready at depth HASH_DEPTH.
        key = Signal(32)
        rnd = [None] * P
        if stochastic:
            jb_src = Mux(opB.kind == Kind.U0, opB.lj, opB.jbase)
            for p in range(P):
                i_p = Mux(opB.lane_i, opB.ibase + p, opB.ibase)[:IDX_BITS]
                j_p = Mux(opB.lane_i, jb_src, jb_src + p)[:IDX_BITS]
                ctr = reg(Cat(j_p, i_p, opB.layer), f"hctr{p}")
                rnd[p] = delay(arx_hash_pipeline(m, key, ctr, name=f"arx{p}", per_stage=HASH_PER_STAGE),
                               HASH_DEPTH - (READ_DEPTH + 1 + HASH_ROUNDS // HASH_PER_STAGE), f"arx{p}_out")

        # ---- stage C (depth 4): operand selection ------------------------------------------
        o4 = opC
        is4 = lambda kind: o4.kind == kind  # noqa: E731
        mask4 = o4.mask
        wsel = Signal(P * wb)
        with m.Switch(o4.wl):
            for n in range(N):
                with m.Case(n):
                    m.d.comb += wsel.eq(wq[n])
        bsel = Signal(P * bb)          # bias word of layer o4.layer (updates, host)
        bfin = Signal(P * bb)          # bias word feeding layer o4.layer (b_{k-1})
        with m.Switch(o4.layer):
            for n in range(N):
                with m.Case(n):
                    m.d.comb += bsel.eq(bq[n])
        with m.Switch(o4.layer):
            for n in range(N):
                with m.Case(n + 1):
                    m.d.comb += bfin.eq(bq[n])
        wl = [v.as_signed() for v in _lanes(wsel, wb, P)]
        s0raw = _lanes(s0q, SW, P)
        s1raw = _lanes(s1q, SW, P)
        s0 = [Mux(o4.zero, 0, v) for v in s0raw]      # step 1 of the free phase reads zeros
        s0b = Mux(o4.zero, 0, s0q.word_select(o4.lane, SW))
        xop = (o4.lx << (fs - fx)) if fx else Const(0, 1)

        # MAC lanes: operands (5), products (6), adder tree in two stages (7, 8), accumulate (8).
        prod6 = []
        for p in range(P):
            operand = Signal(SW, name=f"mac_op{p}")
            with m.Switch(o4.kind):
                with m.Case(Kind.FWD):
                    m.d.comb += operand.eq(s0[p])
                with m.Case(Kind.FB):
                    m.d.comb += operand.eq(s0b)
                with m.Case(Kind.D0MAC):
                    m.d.comb += operand.eq(xop)
            ma = reg(Mux(mask4[p], wl[p], 0), f"mac_w{p}", signed(wb))
            mb = reg(operand, f"mac_s{p}", unsigned(SW))
            prod6.append(reg(ma * mb, f"prod{p}", signed(wb + SW + 1)))
        groups = [prod6[q:q + 4] for q in range(0, P, 4)]
        part7 = [reg(sum(g), f"tree_a{q}") for q, g in enumerate(groups)]
        prod7 = [reg(v, f"prod{p}_7") for p, v in enumerate(prod6)]
        tree8 = reg(sum(part7), "tree")
        prod8 = [reg(v, f"prod{p}_8") for p, v in enumerate(prod7)]
        o8 = op[ACC_DEPTH]
        is8 = lambda kind: o8.kind == kind  # noqa: E731
        acc = [Signal(signed(A), name=f"acc{p}") for p in range(P)]
        acc_eff = [Mux(o8.clear, 0, acc[p]) for p in range(P)]
        with m.If(is8(Kind.FWD)):
            for p in range(P):
                m.d.sync += acc[p].eq(acc_eff[p] + Mux(o8.lsel[p], tree8, 0))
        with m.If(is8(Kind.FB) | is8(Kind.D0MAC)):
            for p in range(P):
                m.d.sync += acc[p].eq(acc_eff[p] + prod8[p])
        m.d.comb += [d0wr.addr.eq(o8.baddr), d0wr.data.eq(Cat(*[a[:A] for a in acc_eff])),
                     d0wr.en.eq(is8(Kind.D0ST))]
        assert D0_WRITE_DEPTH == ACC_DEPTH

        # Neuron finish: the terms beside the accumulator (d0, bias, nudge, rounding offset) are
        # summed in stages 4-7 while the MACs drain; acc + terms (8), round and clamp (9), write (10).
        d0l = [v.as_signed() for v in _lanes(d0q, A, P)]
        bfl = [v.as_signed() for v in _lanes(bfin, bb, P)]
        r_s = (1 << fw) >> 1 if f.state_rounding == "nearest" else 0
        nudge_on = o4.nudge & (o4.layer == N)
        new_state, lows, highs = [], [], []
        for p in range(P):
            drive = Mux(o4.layer == 1, d0l[p], 0)
            t5 = reg(drive + (bfl[p] << (fw + fs - fb)), f"fin_db{p}")
            # sigma * (y - s): one subtraction with its operands swapped for sigma = -1
            y = Mux(o4.ysel[p], one, 0)
            na, nb = Mux(o4.neg, s0[p], y), Mux(o4.neg, y, s0[p])
            nud5 = reg(Mux(nudge_on, na - nb, 0), f"fin_nudge{p}", signed(SW + 2))
            t6 = reg(t5 + (nud5 << (fw - cfg.beta_shift)), f"fin_dbn{p}")
            t7 = reg(t6 + r_s, f"fin_terms{p}") if r_s else reg(t6, f"fin_terms{p}")
            t8 = reg(t7, f"fin_terms{p}_8")
            total9 = reg(acc[p] + t8, f"fin_total{p}")
            pre = total9 >> fw
            lo, hi = pre < 0, pre > one
            m9 = op[ACC_DEPTH + 1].mask[p]
            new_state.append(reg(Mux(lo, 0, Mux(hi, one, pre))[:SW], f"state{p}", unsigned(SW)))
            lows.append(reg(lo & m9, f"act_lo{p}"))
            highs.append(reg(hi & m9, f"act_hi{p}"))
        assert ACC_DEPTH + 2 == STATE_WRITE_DEPTH
        o10 = op[STATE_WRITE_DEPTH]
        fin10 = o10.kind == Kind.FIN
        m.d.comb += [swr.addr.eq(o10.swa), swr.data.eq(Cat(*new_state)),
                     swr.en.eq(Mux(fin10, o10.mask, 0))]

        # Residual (settling) and prediction, both from the last free step.
        moved = Signal()       # s_T1 != s_(T1-1): the free phase has not settled
        moved2 = Signal()      # s_T1 != s_(T1-2): not a period-2 cycle either
        # s_(T1-2) is the old content of the slot the last free step writes (read on port 1);
        # for T1 == 2 it is the zero initial state.
        nd_fin = STATE_WRITE_DEPTH - DATA_DEPTH
        old1 = [delay(s0[p], nd_fin, f"old1_{p}") for p in range(P)]
        old2 = [Const(0, SW)] * P if cfg.T1 == 2 else [delay(s1raw[p], nd_fin, f"old2_{p}") for p in range(P)]
        last10 = fin10 & o10.lastfree
        mv1 = reg(Mux(last10, Cat(*[o10.mask[p] & (new_state[p] != old1[p]) for p in range(P)]), 0), "moved_l")
        mv2 = reg(Mux(last10, Cat(*[o10.mask[p] & (new_state[p] != old2[p]) for p in range(P)]), 0), "moved2_l")
        m.d.sync += [moved.eq(moved | mv1.any()), moved2.eq(moved2 | mv2.any())]
        # argmax over the output layer: a tree of pairwise maxima, one level a stage (from depth
        # 10), then the merge with the running maximum of the earlier blocks
        best, best_idx, have = Signal(SW), Signal(IDX_BITS), Signal()
        cands = [(new_state[p], Const(p, LW), o10.mask[p] & last10 & (o10.layer == N)) for p in range(P)]
        lvl = 0
        while len(cands) > 1:
            nxt = []
            for q in range(0, len(cands), 2):
                if q + 1 == len(cands):
                    vb, vi, vv = cands[q]
                else:
                    (ab, ai, av), (bb_, bi, bv) = cands[q], cands[q + 1]
                    take = bv & (~av | (bb_ > ab))       # strict: the lower lane wins ties
                    vb, vi, vv = Mux(take, bb_, ab), Mux(take, bi, ai), av | bv
                nxt.append((reg(vb, f"amax{lvl}_{q}_v", unsigned(SW)), reg(vi, f"amax{lvl}_{q}_i", unsigned(LW)),
                            reg(vv, f"amax{lvl}_{q}_ok")))
            cands, lvl = nxt, lvl + 1
        (vbm, vim, vvm), = cands
        base_m = op[STATE_WRITE_DEPTH + lvl].ibase
        with m.If(vvm & (~have | (vbm > best))):
            m.d.sync += [best.eq(vbm), best_idx.eq(base_m + vim), have.eq(1)]

        # ---- update unit: D = m1 - m2 (5, 6, 7), round with the hash (11), shift and saturate
        # the update (12), add and saturate the parameter (13), write (15 = UPDATE_WRITE_DEPTH) ----
        gneg = Signal()
        bl = [v.as_signed() for v in _lanes(bsel, bb, P)]
        PW = max(wb, bb)
        UW_ = UPDATE_WRITE_DEPTH
        oS, oP = op[UW_ - 2], op[UW_ - 1]      # the ops saturating the update, adding it
        if self.train:
            # D (7), then: + R (HASH_DEPTH), shift (+1), saturate the update (+2), add and saturate
            # the parameter (+3), write (+4)
            RD = HASH_DEPTH
            assert RD + 4 == UW_
            diff7 = self._update_diffs(m, o4=o4, s0q=s0q, s1q=s1q, s0raw=s0raw, s1raw=s1raw, gneg=gneg, reg=reg)
            old5 = [reg(Mux(is4(Kind.UB), bl[p], wl[p]), f"old{p}", signed(PW)) for p in range(P)]
            oldP = [delay(v, UW_ - 1 - (DATA_DEPTH + 1), f"old{p}") for p, v in enumerate(old5)]
            diffR = [delay(v, RD - (DATA_DEPTH + 3), f"diff{p}") for p, v in enumerate(diff7)]
            classes = [(n, b, pl.sh_b(n) if b else pl.sh_w(n)) for n in range(N) for b in (0, 1)]

            def cls(o, n, b):
                return (o.layer == n) & ((o.kind == Kind.UB) == b)

            oR, oT = op[RD], op[RD + 1]
            is_bP = oP.kind == Kind.UB
            usatS, newW, psatW = [], [], []
            for p in range(P):
                # round: t = D + R (R = 0 for a left shift), then shift
                dW = max(len(diffR[p]), max(sh for _, _, sh in classes) + 1) + 1
                tR = Signal(signed(dW), name=f"rnd_in{p}")
                for n, b, sh in classes:
                    with m.If(cls(oR, n, b)):
                        off = round_offset(max(sh, 0), f.update_rounding, rnd[p] if stochastic else None)
                        m.d.comb += tR.eq(diffR[p] + off)
                tT = reg(tR, f"rnd_t{p}")
                vT = Signal(signed(dW + max([0] + [-sh for _, _, sh in classes])), name=f"upd_v{p}")
                for n, b, sh in classes:
                    with m.If(cls(oT, n, b)):
                        m.d.comb += vT.eq(tT >> sh if sh > 0 else tT << -sh)
                vS = reg(vT, f"upd_vs{p}")
                dlt, us = saturate(vS, f.update_min, f.update_max)
                dP = reg(dlt, f"upd_d{p}", signed(f.update_bits))
                usatS.append(reg(us & oS.mask[p], f"upd_sat{p}"))
                nv = oldP[p] + dP
                vw, pw = saturate(nv, f.weight_min, f.weight_max)
                vb_, pb_ = saturate(nv, f.bias_min, f.bias_max)
                newW.append(reg(Mux(oP.kind == Kind.HWR, oP.hdata[:PW], Mux(is_bP, vb_, vw)), f"upd_new{p}",
                                signed(PW)))
                psatW.append(reg(Mux(is_bP, pb_, pw) & oP.mask[p], f"par_sat{p}"))
        else:
            newW = [reg(oP.hdata[:PW], f"upd_new{p}", signed(PW)) for p in range(P)]
        oW = op[UW_]
        is_wP = ((oP.kind == Kind.UW) | (oP.kind == Kind.U0)) if self.train else Const(0, 1)
        is_bP = (oP.kind == Kind.UB) if self.train else Const(0, 1)
        hwP = oP.kind == Kind.HWR
        for n in range(N):
            here = oP.layer == n
            wen = reg(Mux(is_wP & here, oP.mask,
                          Mux(hwP & here & (oP.target == TARGET_WEIGHT), Const(1, 1) << oP.lane, 0)),
                      f"w{n}_wen", unsigned(P))
            ben = reg(Mux(is_bP & here, oP.mask,
                          Mux(hwP & here & (oP.target == TARGET_BIAS), Const(1, 1) << oP.lane, 0)),
                      f"b{n}_wen", unsigned(P))
            m.d.comb += [
                wwr[n].addr.eq(oW.waddr), wwr[n].data.eq(Cat(*[v[:wb] for v in newW])), wwr[n].en.eq(wen),
                bwr[n].addr.eq(oW.baddr), bwr[n].data.eq(Cat(*[v[:bb] for v in newW])), bwr[n].en.eq(ben),
            ]

        # ---- counters ----------------------------------------------------------------------
        cnt = {name: getattr(self, name) for name in ("cycles", "samples", "update_sat", "weight_sat",
                                                      "bias_sat", "act_low", "act_high", "unsettled",
                                                      "cycling")}
        cnt_r = {name: Signal(32, name=f"cnt_{name}") for name in cnt}
        for name in cnt:
            m.d.comb += cnt[name].eq(cnt_r[name])
        CW = ceil_log2(P + 1)
        per = {(name, n): Signal(32, name=f"cnt_{name}_{n}") for name in LAYER_COUNTERS for n in range(N)}
        if self.train:
            # saturations: popcounts registered, added one stage after the write
            uW = reg(sum(usatS) if P > 1 else usatS[0], "upd_sat_n", unsigned(CW))
            uC = reg(uW, "upd_sat_nc", unsigned(CW))
            pC = reg(sum(psatW) if P > 1 else psatW[0], "par_sat_n", unsigned(CW))
            oC = op[UW_ + 1]
            w15 = (oC.kind == Kind.UW) | (oC.kind == Kind.U0)
            b15 = oC.kind == Kind.UB
            m.d.sync += [cnt_r["update_sat"].eq(cnt_r["update_sat"] + Mux(w15 | b15, uC, 0)),
                         cnt_r["weight_sat"].eq(cnt_r["weight_sat"] + Mux(w15, pC, 0)),
                         cnt_r["bias_sat"].eq(cnt_r["bias_sat"] + Mux(b15, pC, 0))]
            for n in range(N):
                here = oC.layer == n
                m.d.sync += [
                    per["update_sat", n].eq(per["update_sat", n] + Mux(here & (w15 | b15), uC, 0)),
                    per["weight_sat", n].eq(per["weight_sat", n] + Mux(here & w15, pC, 0)),
                    per["bias_sat", n].eq(per["bias_sat", n] + Mux(here & b15, pC, 0)),
                ]
        # clamps: popcounts registered (10 -> 11), added at 11
        lo11 = reg(sum(lows) if P > 1 else lows[0], "act_lo_n", unsigned(CW))
        hi11 = reg(sum(highs) if P > 1 else highs[0], "act_hi_n", unsigned(CW))
        o11 = op[STATE_WRITE_DEPTH + 1]
        fin11 = (o11.kind == Kind.FIN) & learn_r
        with m.If(fin11):
            m.d.sync += [cnt_r["act_low"].eq(cnt_r["act_low"] + lo11),
                         cnt_r["act_high"].eq(cnt_r["act_high"] + hi11)]
        for n in range(N):
            with m.If(fin11 & (o11.layer == n + 1)):
                m.d.sync += [per["act_low", n].eq(per["act_low", n] + lo11),
                             per["act_high", n].eq(per["act_high", n] + hi11)]
        per_sel = Signal(32)
        for (name, n), sig in per.items():
            with m.If((o4.layer == n) & (o4.cid == LAYER_COUNTERS.index(name))):
                m.d.comb += per_sel.eq(sig)

        # ---- host responses ------------------------------------------------------------------
        # The value is taken in stage C; the response is given when the op reaches the parameter
        # write (one host op at a time), so a write has landed before its response.
        rsp_valid, rsp_data = Signal(), Signal(signed(32))
        rsp_hold = Signal(signed(32))
        m.d.comb += [self.access_rsp.valid.eq(rsp_valid), self.access_rsp.payload.eq(rsp_data)]
        with m.If(is4(Kind.HRD) | is4(Kind.HWR)):
            with m.If(is4(Kind.HWR)):
                m.d.sync += rsp_hold.eq(0)
            with m.Else():
                with m.Switch(o4.target):
                    with m.Case(TARGET_WEIGHT):
                        m.d.sync += rsp_hold.eq(wsel.word_select(o4.lane, wb).as_signed())
                    with m.Case(TARGET_BIAS):
                        m.d.sync += rsp_hold.eq(bsel.word_select(o4.lane, bb).as_signed())
                    with m.Case(TARGET_STATE):
                        m.d.sync += rsp_hold.eq(s0q.word_select(o4.lane, SW))
                    with m.Case(TARGET_COUNTER):
                        m.d.sync += rsp_hold.eq(per_sel)
                    with m.Default():
                        m.d.sync += rsp_hold.eq(0)
        with m.If(self.access_rsp.valid & self.access_rsp.ready):
            m.d.sync += rsp_valid.eq(0)
        with m.If((oW.kind == Kind.HRD) | (oW.kind == Kind.HWR)):
            m.d.sync += [rsp_valid.eq(1), rsp_data.eq(rsp_hold)]

        # ---- controller ------------------------------------------------------------------
        self._controller(m, opA=opA, key=key, label=label, learn_r=learn_r, gneg=gneg, moved=moved, moved2=moved2,
                         have=have, best_idx=best_idx, lwr=lwr, lrd=lrd, JW=JW, cnt_r=cnt_r, rsp_valid=rsp_valid)
        return m

    def _update_diffs(self, m, *, o4, s0q, s1q, s0raw, s1raw, gneg, reg):
        """The exact differences D of the update, one per lane, registered at depth 7: operands
        chosen in stage C (latches hold the row operands), products (6), difference (7)."""
        f, P = self.cfg.fixed, self.plan.P
        SW, fx = f.state_frac + 1, f.input_frac
        k_is = lambda kind: o4.kind == kind  # noqa: E731
        ra, rc = Signal(SW), Signal(SW)
        la = [Signal(SW, name=f"la{p}") for p in range(P)]
        lc = [Signal(SW, name=f"lc{p}") for p in range(P)]
        with m.If(k_is(Kind.UROW)):
            m.d.sync += [ra.eq(s0q.word_select(o4.lane, SW)), rc.eq(s1q.word_select(o4.lane, SW))]
        with m.If(k_is(Kind.U0ROW)):
            m.d.sync += [la[p].eq(s0raw[p]) for p in range(P)] + [lc[p].eq(s1raw[p]) for p in range(P)]
        diffs = []
        W2 = max(SW, fx, 1)
        for p in range(P):
            a1, a2, c1, c2 = (Signal(SW, name=f"ua{p}"), Signal(W2, name=f"ub{p}"),
                              Signal(SW, name=f"uc{p}"), Signal(W2, name=f"ud{p}"))
            with m.Switch(o4.kind):
                with m.Case(Kind.UW):
                    m.d.comb += [a1.eq(ra), a2.eq(s0raw[p]), c1.eq(rc), c2.eq(s1raw[p])]
                with m.Case(Kind.U0):
                    m.d.comb += [a1.eq(la[p]), a2.eq(o4.lx), c1.eq(lc[p]), c2.eq(o4.lx)]
                with m.Case(Kind.UB):
                    m.d.comb += [a1.eq(s0raw[p]), a2.eq(1), c1.eq(s1raw[p]), c2.eq(1)]
            a1r, a2r, c1r, c2r = (reg(v, f"{v.name}_r") for v in (a1, a2, c1, c2))
            m1 = reg(a1r * a2r, f"um1_{p}")
            m2 = reg(c1r * c2r, f"um2_{p}")
            d = Signal(signed(SW + W2 + 2), name=f"diff{p}")
            m.d.sync += d.eq(Mux(gneg, m2 - m1, m1 - m2))
            diffs.append(d)
        return diffs

    def _controller(self, m, *, opA, key, label, learn_r, gneg, moved, moved2, have, best_idx, lwr, lrd, JW,
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
        # the key hash: one ARX round a cycle (KEY: H(seed, t), SIGN: H(key, SIGN_COUNTER))
        hx, hy, hr, hkey = Signal(16), Signal(16), Signal(range(HASH_ROUNDS)), Signal(32)
        hxn, hyn = arx_round(hx, hy, Mux(hr[0], hkey[16:], hkey[:16]), hr)
        hout = Cat(hyn, hxn)
        bub = Signal(range(max(STEP_BUBBLES, D0_BUBBLES, 2) + 1))

        # loop counters
        ib, ibP, r, i, jb, jbP, j, jw, jl, e, il, iw = (
            Signal(IDX_BITS + 1, name=n) for n in ("ib", "ibP", "r", "i", "jb", "jbP", "j", "jw", "jl",
                                                   "e", "il", "iw"))
        wa = Signal(len(opA.waddr), name="wa_cnt")
        steps_left = Signal(range(max(cfg.T1, cfg.T2) + 1))
        rbase, wbase, pa, pb = (Signal(len(opA.sa0), name=n) for n in ("rbase", "wbase", "pa", "pb"))
        zero, nudge, neg, lastfree = Signal(), Signal(), Signal(), Signal()
        phase = Signal(2)           # 0 free, 1 nudged, 2 negative
        drain = Signal(range(pl.drain + 1))
        abase = pl.slot_nudged * S
        cbase = (pl.slot_negative if sym else pl.slot_free) * S

        def emit(kind, **fields):
            m.d.sync += opA.kind.eq(kind)
            for name, v in fields.items():
                m.d.sync += getattr(opA, name).eq(v)

        def nv_block(k, b):
            return Mux(b == pl.blocks(k) - 1, pl.last_lanes(k), P)

        m.d.sync += opA.eq(0)          # every op starts from all-zero fields (kind NOP): no stale fields
        # the pixel list is read at emission: its data (pixel index and value) meets the op in stage A
        m.d.comb += lrd.addr.eq(e)

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
                        m.d.sync += [label.eq(self.sample.payload), hx.eq(t[16:]), hy.eq(t[:16]), hr.eq(0)]
                        m.next = "KEY"
            assert KEY_CYCLES == 2 * HASH_ROUNDS
            with m.State("KEY"):
                m.d.comb += [busy.eq(1), hkey.eq(self.seed)]
                m.d.sync += [hx.eq(hxn), hy.eq(hyn), hr.eq(hr + 1)]
                with m.If(hr == HASH_ROUNDS - 1):
                    m.d.sync += [key.eq(hout), hx.eq(SIGN_COUNTER >> 16), hy.eq(SIGN_COUNTER & 0xFFFF), hr.eq(0)]
                    m.next = "SIGN"
            with m.State("SIGN"):
                m.d.comb += [busy.eq(1), hkey.eq(key)]
                m.d.sync += [hx.eq(hxn), hy.eq(hyn), hr.eq(hr + 1)]
                with m.If(hr == HASH_ROUNDS - 1):
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
                    m.d.sync += bub.eq(0)
                    m.next = "D0_END"
                with m.Elif(nnz != 0):
                    m.next = "D0_MAC"
            with m.State("D0_END"):
                # D0_BUBBLES bubbles: layer 1's first finish reads d0 after the last D0ST wrote it
                m.d.comb += busy.eq(1)
                m.d.sync += bub.eq(bub + 1)
                with m.If(bub == D0_BUBBLES - 1):
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
                            m.d.sync += bub.eq(0)
                            m.next = "STEP_END"
                    with m.Else():
                        enter_layer(k, ib + 1, ibP + P)
            assert STEP_BUBBLES >= 2
            with m.State("STEP_END"):
                # STEP_BUBBLES bubbles (STEP_END2 is the last): the next step's first read (depth
                # READ_DEPTH) comes after this step's last state write (depth STATE_WRITE_DEPTH)
                m.d.comb += busy.eq(1)
                m.d.sync += bub.eq(bub + 1)
                with m.If(bub == STEP_BUBBLES - 2):
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
                with m.If(drain == pl.drain - 1):
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
