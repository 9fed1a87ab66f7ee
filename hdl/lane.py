"""One lane of the core: its neurons' weights, bias, input drive and states, one multiplier, one
accumulator, one update datapath (docs/hardware.md, "Lanes").

Lane p owns neuron i = g*P + p of layers 1..N-1 (``Plan``). Every cycle it receives one op record
from the broadcast tree (stage 0) and works on it in a fixed pipeline:

  0  memory addresses from the record (registers only)      1  memory outputs
  2  memory outputs registered                               3  multiplier operands registered
  4  product registered                                      5  accumulator, tree input, update D
  finish of a layer-1 neuron: acc + terms (5 -> 6), round and clamp (6 -> 7), state write (7),
    settling compares (8), clamp and settling flags (9)
  update: the random word (9), + offset (10), shift (11), saturate the update (12), add and saturate
    the parameter (13, written), saturation flags (14)

Fixed point (docs/fixed-point.md): products and sums are exact (the accumulator width is checked by
``EPConfig.check_fixed``); the finish rounds by ``state_rounding`` and clamps to [0, 1]; the update
rounds by ``update_rounding`` (stochastic: the spec's hash of the weight's counter), saturates the
update to ``update_bits`` and the parameter to its format. Nothing wraps.
"""
from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eqfpga.golden.fixedpoint import BIAS_INDEX, share_bits

from .arx_hash import arx_hash_pipeline, hash_counter, hash_piece
from .delay import Delays
from .fixed import round_offset, saturate
from .ops import LANE_TARGETS, LATE_FIELDS, Kind, Target, Widths, record_layout
from .plan import IDX_BITS, LANE_FLAGS, LANE_HASH, N_SLOTS, Plan


def _in_class(kind, wl, k, n):
    """The op (``kind``, layer ``wl``) is of update class (k, n): the layer counts for UWC only."""
    return (kind == k) & ((wl == n) if k == Kind.UWC else 1)


def _host_value(m, target, dst, *, weight, bias, state):
    """``dst`` <- the word a host read of ``target`` returns (comb)."""
    with m.Switch(target):
        with m.Case(Target.WEIGHT):
            m.d.comb += dst.eq(weight)
        with m.Case(Target.LANE_BIAS):
            m.d.comb += dst.eq(bias)
        with m.Case(Target.LANE_STATE):
            m.d.comb += dst.eq(state)


SMALL_MEMORY = 4        # memories of at most this many words are built from flip-flops


def _few_words(depth: int) -> dict:
    """yosys's ``ram_style`` for a lane memory of ``depth`` words: flip-flops when it is small."""
    return {"ram_style": "logic"} if depth <= SMALL_MEMORY else {}


def _bias_term(b, k: int, r_s: int):
    """(b << k) + r_s, r_s 0 or a power of two: an increment of b's upper bits, not a wide adder."""
    b = b.as_signed()
    if r_s == 0:
        return b << k
    pos = r_s.bit_length() - 1                  # r_s = 2^pos
    if pos < k:                                 # inside the zeros below b
        return Cat(Const(r_s, k), b).as_signed()
    j = pos - k
    return Cat(Const(0, k), b[:j], (b >> j) + 1).as_signed()


class Lane(wiring.Component):
    """Lane ``p`` of ``plan``'s core. ``weights`` / ``biases``: initial contents (W_n as rows, the
    whole net's lists; the lane keeps its own part). ``train=False``: no update datapath.
    ``delay_ram``: long delays in LUT RAM or registers (hdl/delay.py; None: RAM unless iCE40)."""

    def __init__(self, plan: Plan, p: int, *, weights=None, biases=None, train: bool = True,
                 delay_ram: bool | None = None):
        self.pl, self.p, self.train = plan, p, train
        self.delay_ram = delay_ram      # long delays in LUT RAM (None: unless the platform is an iCE40)
        self.w = Widths(plan)
        f = plan.cfg.fixed
        self._weights, self._biases = weights, biases
        super().__init__({
            "rec": In(record_layout(self.w)),    # the op record, stage 0 (a register of the broadcast tree)
            "key": In(32),                        # the sample's key (stable through the update)
            "gneg": In(1),                        # sigma = -1: the update's difference is negated
            "tree": Out(signed(plan.acc_width)),      # adder-tree input (stage 5)
            "lo": Out(1), "hi": Out(1),           # hard-sigmoid clamps (stage 8)
            "mv": Out(1), "mv2": Out(1),          # s_T1 != s_(T1-1), s_T1 != s_(T1-2) (stage 8)
            "usat": Out(1), "psat": Out(1),       # update / parameter saturated (stage 14)
            "rnd_out": Out(32),                   # this lane's hash word (stage 9), if it hashes
            "rnd_in": In(32),                     # the word of lane p - p % hash_share (stage 9)
        })

    def _classes(self):
        """(kind, layer, shift) of the update's rounding classes (``Plan.lane_update_shifts``)."""
        return [(Kind[k], n, sh) for k, n, sh in self.pl.lane_update_shifts()]

    # ---- initial contents ---------------------------------------------------------------------
    def _w_init(self):
        pl, p, wb = self.pl, self.p, self.pl.cfg.fixed.weight_bits
        words = [0] * pl.w_words
        if self._weights is None:
            return words
        s, P = pl.sizes, pl.P
        for n in range(pl.N):           # this lane's rows of W_0, its columns of W_n
            for g in range(pl.lane_groups(1 if n == 0 else n, p)):
                own = g * P + p
                for other in range(s[0] if n == 0 else s[n + 1]):
                    i, j = (own, other) if n == 0 else (other, own)
                    words[pl.weight_addr(n, i, j)[1]] = int(self._weights[n][i][j]) & ((1 << wb) - 1)
        return words

    def _own_words(self) -> int:
        """Words of the memories with one word per layer-1 neuron the lane owns (b0, d0)."""
        return max(2, self.pl.blocks(1))

    def _b_init(self):
        pl, p, bb = self.pl, self.p, self.pl.cfg.fixed.bias_bits
        words = [0] * self._own_words()
        if self._biases is not None:
            for g in range(pl.lane_groups(1, p)):
                words[g] = int(self._biases[0][g * pl.P + p]) & ((1 << bb) - 1)
        return words

    def elaborate(self, platform):
        m = Module()
        pl, p, W = self.pl, self.p, self.w
        cfg, f = pl.cfg, pl.cfg.fixed
        N, P, s = pl.N, pl.P, pl.sizes
        wb, bb, A, SW = f.weight_bits, f.bias_bits, pl.acc_width, W.SW
        fs, fx, fw, fb = f.state_frac, f.input_frac, f.weight_frac, f.bias_frac
        one = 1 << fs
        train = self.train
        stochastic = train and f.update_rounding == "stochastic"
        r0 = self.rec

        # registers; long delays of data in LUT RAM, of enables in registers (hdl/delay.py)
        ram = self.delay_ram
        if ram is None:
            ram = str(getattr(platform, "family", "")).lower() != "ice40"
        delay = Delays(m, ram=ram)
        reg = delay.reg

        # ---- stage 0: decode, memory addresses ------------------------------------------------
        kind0 = r0.kind
        is0 = lambda k: kind0 == k  # noqa: E731
        # the op's group is one this lane owns (g*P + p < s_gl)
        valid0 = Signal(name="valid0")
        with m.Switch(r0.gl):
            for k in range(1, N):
                with m.Case(k):
                    m.d.comb += valid0.eq(r0.g < pl.lane_groups(k, p))
        hsel0 = (r0.lane == p) & (is0(Kind.HRD) | is0(Kind.HWR))

        # every layer's weights in one memory (W_n from Plan.w_base(n)): the record's address is the word's
        m.submodules.w = wm = Memory(shape=unsigned(wb), depth=pl.w_words, init=self._w_init())
        wrd, wwr = wm.read_port(), wm.write_port()
        m.d.comb += wrd.addr.eq(r0.waddr)
        # a lane's bias and input drive: one word per neuron it owns; a few words are cheaper in
        # flip-flops than in 16x4 LUT RAMs (~7.4 LUT4 each once packed, for 4 bits)
        own = self._own_words()
        few = _few_words(own)
        m.submodules.b0 = bmem = Memory(shape=unsigned(bb), depth=own, init=self._b_init(), attrs=few)
        brd, bwr = bmem.read_port(), bmem.write_port()
        m.submodules.d0 = dmem = Memory(shape=unsigned(A), depth=own, init=[], attrs=few)
        drd, dwr = dmem.read_port(), dmem.write_port()
        # d0 is read two cycles later (address g at 2): its data is at 3, when the finish terms add up
        m.d.comb += [brd.addr.eq(r0.g), drd.addr.eq(delay(r0.g, 2, "g"))]
        # layer-1 states (written by this lane's finish) and the middle layers' copies (by the root)
        depth = max(2, N_SLOTS * pl.SL)
        m.submodules.st = smem = Memory(shape=unsigned(SW), depth=depth, init=[])
        sra, srb, swr = smem.read_port(), smem.read_port(), smem.write_port()
        m.d.comb += [sra.addr.eq(r0.sa), srb.addr.eq(r0.sb)]
        mids = list(pl.middle_layers)
        if mids:
            m.submodules.cp = cmem = Memory(shape=unsigned(SW), depth=depth, init=[])
            cra, crb, cwr = cmem.read_port(), cmem.read_port(), cmem.write_port()
            m.d.comb += [cra.addr.eq(r0.sa), crb.addr.eq(r0.sb),
                         cwr.addr.eq(r0.cp_addr), cwr.data.eq(r0.cp_val), cwr.en.eq(r0.cp_en & (r0.cp_lane == p))]
            fbm = {}
            for k in mids:
                m.submodules[f"fb{k}"] = mem = Memory(shape=unsigned(A), depth=max(2, pl.blocks(k)), init=[])
                rd, wr = mem.read_port(), mem.write_port()
                m.d.comb += rd.addr.eq(r0.inj_g)
                fbm[k] = (rd, wr)

        # the random source (docs/fixed-point.md): the hash word of (layer, u // S, v), u = this
        # lane's neuron; lanes p .. p + hash_share - 1 read the word lane p - p % hash_share hashes
        gi = Signal(IDX_BITS, name="own_index")         # this lane's neuron of group g: g*P + p
        m.d.comb += gi.eq(r0.gp + p)
        rnd = piece0 = None
        if stochastic:
            per = {(k, n): 32 // share_bits(max(sh, 0)) for k, n, sh in self._classes()}
            hashes = p % pl.hash_share == 0
            if hashes:
                ctr = Signal(32, name="hash_ctr")
            # which piece of the word is this lane's: u mod S, a constant when S divides P
            if any(pl.P % s_ for s_ in per.values()):
                piece0 = Signal(2, name="piece0")
            for k, n, sh in self._classes():
                with m.If(_in_class(kind0, r0.wl, k, n)):
                    if hashes:
                        v = BIAS_INDEX if k == Kind.U0B else r0.idx
                        m.d.comb += ctr.eq(hash_counter(n, gi, v, sh))
                    if piece0 is not None:
                        m.d.comb += piece0.eq(gi & (per[k, n] - 1))
            if hashes:
                rnd = arx_hash_pipeline(m, self.key, reg(ctr, "hash_ctr1"), name="arx", per_stage=1,
                                        reset_less=True)   # at stage 9
                m.d.comb += self.rnd_out.eq(rnd)
            else:
                rnd = self.rnd_in
            assert LANE_HASH == 1 + 8
            if piece0 is not None:
                piece0 = delay(piece0, LANE_HASH, "piece")

        # ---- stages 1, 2: memory outputs registered --------------------------------------------
        r1 = {k: reg(v, f"{k}1") for k, v in (("kind", kind0), ("valid", valid0), ("hsel", hsel0),
                                             ("gl", r0.gl), ("wl", r0.wl), ("zero", r0.zero),
                                             ("zero2", r0.zero2), ("target", r0.target))}
        r2 = {k: reg(v, f"{k}2") for k, v in r1.items()}
        wsel2 = reg(wrd.data, "w_q").as_signed()
        b2 = reg(brd.data, "b0_q")
        sa2 = reg(sra.data, "sa_q")
        sb2 = reg(srb.data, "sb_q")
        if mids:
            ca2 = reg(cra.data, "ca_q")
            cb2 = reg(crb.data, "cb_q")
            l1 = r2["gl"] == 1
            sa2, sb2 = Mux(l1, sa2, ca2), Mux(l1, sb2, cb2)
        kind2 = r2["kind"]
        # fields that reach the lane late (ops.LATE_FIELDS): the operands at stage 2, hdata at 12
        assert LATE_FIELDS == {"bval": 2, "bval2": 2, "x": 2, "hdata": 12}
        x2, bval2_, bval22 = r0.x, r0.bval, r0.bval2
        is2 = lambda k: kind2 == k  # noqa: E731
        # the states: s_(t-1) (zero in the first step) and s_(t-2) (zero in the first two)
        old1_2 = Mux(r2["zero"], 0, sa2)
        old2_2 = Mux(r2["zero2"], 0, sb2)

        # ---- stage 2 -> 3: multiplier operands ------------------------------------------------
        MA = max(wb, SW + 1)
        MB = max(SW, fx) + 1
        ma = Signal(signed(MA), name="mul_a")
        mb = Signal(signed(MB), name="mul_b")
        # each operand an OR of (select & value) with selects decoded at 1 and registered (one-hot:
        # kinds and host targets exclude each other), not a compare chain and a wide case: the
        # deepest lane path was the state read through sigma's swap, a subtractor and that case
        hot = {k: reg(r1["kind"] == k, f"is_{k.name.lower()}2", 1) for k in Kind}
        tgt = {t: reg(r1["target"] == t, f"tg_{t.name.lower()}2", 1) for t in LANE_TARGETS}
        host_by_mul = bb <= MA       # a host read goes through the multiplier (x 1) to the tree
        hrd = hot[Kind.HRD] if host_by_mul else Const(0, 1)
        neg = self.gneg if train else Const(0, 1)
        uwa, uwc = (hot[Kind.UWA], hot[Kind.UWC]) if train else (Const(0, 1), Const(0, 1))
        u0 = (hot[Kind.U0] | hot[Kind.U0B]) if train else Const(0, 1)

        def one_of(*pairs):
            return reduce(operator.or_, [Mux(sel, val, 0) for sel, val in pairs])

        # the update's products with sigma applied: U0 sigma (a - c) x, U0B sigma (a - c) (x 1);
        # UWA / UWC a a' / c c' (sigma = +1) or c c' / a a' (sigma = -1): D = UWA's - UWC's
        ma_terms = [(hot[Kind.D0MAC] | hot[Kind.FB] | hot[Kind.FWD] | (hrd & tgt[Target.WEIGHT]), wsel2),
                    ((uwa & ~neg) | (uwc & neg) | (hrd & tgt[Target.LANE_STATE]), sa2),
                    (hrd & tgt[Target.LANE_BIAS], b2.as_signed())]
        mb_terms = [(hot[Kind.D0MAC], x2 << (fs - fx)),
                    (hot[Kind.FB] | (uwa & ~neg) | (uwc & neg), bval2_),
                    (hot[Kind.FWD] & ~r2["zero"], sa2),
                    (hrd | (hot[Kind.U0B] if train else Const(0, 1)), Const(1, 2))]
        if train:
            ma_terms += [(u0 & ~neg, sa2 - sb2), (u0 & neg, sb2 - sa2),
                         ((uwa & neg) | (uwc & ~neg), sb2)]
            mb_terms += [(hot[Kind.U0], x2), ((uwa & neg) | (uwc & ~neg), bval22)]
        m.d.comb += [ma.eq(one_of(*ma_terms)), mb.eq(one_of(*mb_terms))]
        ma3 = reg(ma, "mul_a3")
        mb3 = reg(mb, "mul_b3")
        r3 = {k: reg(v, f"{k}3") for k, v in r2.items()}
        # the finish terms d0 + (b0 << (fw + fs - fb)) + r_s start the accumulator of a layer-1
        # neuron's first FB op (0 for every other op): integer sums are exact in any order
        r_s = (1 << fw) >> 1 if f.state_rounding == "nearest" else 0
        tb3 = reg(_bias_term(b2, fw + fs - fb, r_s), "fin_bias3")
        AL = A + (r_s > 0)      # acc_width bounds d0 + b0 + the sums; r_s may need one bit more
        fin_op3 = (r3["kind"] == Kind.FB) & (r3["gl"] == 1)
        t4 = reg(Mux(fin_op3, drd.data.as_signed() + tb3, 0), "fin_terms4", signed(AL))
        if not host_by_mul:         # host read value (2) beside the multiplier, into the tree at 5
            hval = Signal(signed(max(wb, bb, SW + 1)), name="host_val")
            _host_value(m, r2["target"], hval, weight=wsel2, bias=b2.as_signed(), state=sa2)
            hval4 = delay(reg(hval, "host_val3"), 1, "host_val")

        # ---- stage 3 -> 4: product --------------------------------------------------------------
        p4 = reg(ma3 * mb3, "prod4")
        r4 = {k: reg(v, f"{k}4") for k, v in r3.items()}
        kind4 = r4["kind"]
        is4 = lambda k: kind4 == k  # noqa: E731
        clear4 = delay(r0.clear, 4, "clear", ctrl=True)
        inj4 = Const(0, 1)
        if mids:
            # the feedback sum of a middle-layer neuron joins its forward sum at the tree input
            injsel = delay(r0.inj & (r0.lane == p) & is0(Kind.FWD), 4, "inj", ctrl=True)
            fbq = Signal(unsigned(A), name="fb_q")
            with m.Switch(r1["wl"]):
                for k in mids:
                    with m.Case(k - 1):      # a FWD op into layer k reads W_(k-1)
                        m.d.comb += fbq.eq(fbm[k][0].data)
            fb4 = delay(reg(fbq, "fb_q2"), 2, "fb")
            inj4 = Mux(injsel, fb4.as_signed(), 0)

        # ---- stage 4 -> 5: accumulate, tree input ---------------------------------------------
        acc = Signal(signed(AL), name="acc", reset_less=True)
        with m.If(is4(Kind.D0MAC) | is4(Kind.FB)):
            m.d.sync += acc.eq(Mux(clear4, t4, acc) + p4)
        # the tree input register, 0 unless the op sends something (its synchronous reset: no mux)
        tree_r = Signal(signed(A), name="tree_r", reset_less=True)
        fwd4, hrd4 = is4(Kind.FWD), is4(Kind.HRD) & r4["hsel"]
        # the product alone under one enable; a middle layer's feedback joins a FWD op's product at
        # the owning lane, whether or not that lane owns the op's neuron
        send_p4 = Const(0, 1)
        if not mids:
            send_p4 |= fwd4 & r4["valid"]
        if host_by_mul:
            send_p4 |= hrd4
        with m.If(send_p4):
            m.d.sync += tree_r.eq(p4)
        if mids:
            with m.Elif(fwd4):
                m.d.sync += tree_r.eq(Mux(r4["valid"], p4, 0) + inj4)
        if not host_by_mul:
            with m.Elif(hrd4):
                m.d.sync += tree_r.eq(hval4)
        with m.Else():
            m.d.sync += tree_r.eq(0)
        m.d.comb += self.tree.eq(tree_r)         # visible at 5

        # ---- stage 5: store accumulators, finish layer-1 neurons ------------------------------
        r5 = {k: reg(v, f"{k}5") for k, v in r4.items()}
        kind5 = r5["kind"]
        last5 = delay(r0.last, 5, "last", ctrl=True)
        g5 = delay(r0.g, 5, "g")
        store5 = last5 & r5["valid"]
        m.d.comb += [dwr.addr.eq(g5), dwr.data.eq(acc), dwr.en.eq(store5 & (kind5 == Kind.D0MAC))]
        if mids:
            for k in mids:
                wr = fbm[k][1]
                m.d.comb += [wr.addr.eq(g5), wr.data.eq(acc),
                             wr.en.eq(store5 & (kind5 == Kind.FB) & (r5["gl"] == k))]
        fin5 = store5 & (kind5 == Kind.FB) & (r5["gl"] == 1)
        pre6 = reg(acc >> fw, "fin_pre6", signed(AL - fw))
        # the clamps from the accumulator, beside the shift: floor(acc / 2^fw) > one <=> acc >= (one + 1) 2^fw
        lo6 = reg(acc < 0, "fin_lo6")
        hi6 = reg(acc >= ((one + 1) << fw), "fin_hi6")
        fin6 = reg(fin5, "fin6")
        state7 = reg(Mux(lo6, 0, Mux(hi6, one, pre6))[:SW], "state7", unsigned(SW))
        fin7 = reg(fin6, "fin7")
        sb7 = delay(r0.sb, 7, "swa")
        m.d.comb += [swr.addr.eq(sb7), swr.data.eq(state7), swr.en.eq(fin7)]
        m.d.comb += [self.lo.eq(delay(lo6 & fin6, LANE_FLAGS - 6, "lo")),
                     self.hi.eq(delay(hi6 & fin6, LANE_FLAGS - 6, "hi"))]
        olds7 = delay.group(4, "olds", old1=reg(old1_2, "old1_3"), old2=reg(old2_2, "old2_3"))
        old1_7, old2_7 = olds7["old1"], olds7["old2"]
        # settling: the compares registered (8), then the last free step's finishes select them (9)
        en8 = delay(fin5 & delay(r0.lastfree, 5, "lastfree", ctrl=True), 3, "mv_en", ctrl=True)
        ne1_8, ne2_8 = reg(state7 != old1_7, "mv_ne8"), reg(state7 != old2_7, "mv2_ne8")
        assert LANE_FLAGS == 9
        m.d.comb += [self.mv.eq(reg(en8 & ne1_8, "mv_r")), self.mv2.eq(reg(en8 & ne2_8, "mv2_r"))]

        # ---- update datapath --------------------------------------------------------------------
        if train:
            self._update(m, reg=reg, delay=delay, r0=r0, r4=r4, p4=p4, wsel2=wsel2, b2=b2,
                         rnd=rnd, piece9=piece0, wwr=wwr, bwr=bwr, hsel0=hsel0)
        else:
            self._host_writes(m, reg=reg, delay=delay, r0=r0, wwr=wwr, bwr=bwr, hsel0=hsel0)
        return m

    def _host_writes(self, m, *, reg, delay, r0, wwr, bwr, hsel0):
        """Inference-only lanes: host writes only, at the same stage (13) as the update's."""
        pl, f = self.pl, self.pl.cfg.fixed
        hw = hsel0 & (r0.kind == Kind.HWR)
        hw13 = delay(hw, 13, "hw", ctrl=True)
        at13 = delay.group(13, "host", tgt=r0.target, wa=r0.waddr, g=r0.g)
        tgt13, wa13, g13 = (at13[k] for k in ("tgt", "wa", "g"))
        hd13 = reg(r0.hdata, "hd13")        # hdata is at 12 (ops.LATE_FIELDS)
        m.d.comb += [wwr.addr.eq(wa13), wwr.data.eq(hd13[:f.weight_bits]),
                     wwr.en.eq(hw13 & (tgt13 == Target.WEIGHT))]
        m.d.comb += [bwr.addr.eq(g13), bwr.data.eq(hd13[:f.bias_bits]),
                     bwr.en.eq(hw13 & (tgt13 == Target.LANE_BIAS))]

    def _update(self, m, *, reg, delay, r0, r4, p4, wsel2, b2, rnd, piece9, wwr, bwr, hsel0):
        """D (5), + R (9 -> 10), shift (11), saturate the update (12), add and saturate (13), flags (14)."""
        pl, f = self.pl, self.pl.cfg.fixed
        N = pl.N
        wb, bb = f.weight_bits, f.bias_bits
        SW = self.w.SW
        kind4 = r4["kind"]
        # D at 5: U0, U0B: the product (sigma applied to the operands); UWC: the previous op's
        # (UWA's) product minus its own
        # |D| <= 2^(2 fs) (states in [0, 2^fs], x < 2^fx <= 2^fs): DW bits hold every D and product here
        fs = f.state_frac
        DW = 2 * fs + 2
        p4n = p4[:DW].as_signed()
        prev5 = reg(p4n, "prod5")
        d5 = reg(Mux(kind4 == Kind.UWC, prev5 - p4n, p4n), "diff5", signed(DW))
        d9 = delay(d5, 4, "diff")
        # rounding class of the op: (shift) per kind and layer
        # the class decoded at 8 and registered one-hot (9, 10): no compare before the offset's
        # adder or the shift's select (the lane's deepest paths were these, 5.35 LUT levels)
        cls8 = delay.group(8, "ucls", kind=r0.kind, wl=r0.wl)
        classes = self._classes()
        hot9 = [reg(_in_class(cls8["kind"], cls8["wl"], k, n), f"ucls{i}_9", 1) for i, (k, n, _) in enumerate(classes)]
        hot10 = [reg(h, f"ucls{i}_10", 1) for i, h in enumerate(hot9)]

        max_sh = max(max(sh for *_, sh in classes), 0)
        off9 = Signal(max_sh + 1, name="rnd_off9")       # the class's rounding offset R < 2^m
        for (k, n, sh), hot in zip(classes, hot9):
            with m.If(hot):
                mm = max(sh, 0)
                piece = None
                if rnd is not None and mm > 0:
                    piece = hash_piece(rnd, self.p if piece9 is None else piece9, mm)
                m.d.comb += off9.eq(round_offset(mm, f.update_rounding, piece))
        t10 = reg(d9 + off9, "rnd_t10", signed(max(DW, max_sh + 1) + 1))
        v11 = Signal(signed(len(t10) + max(0, -min(sh for *_, sh in classes))), name="upd_v11", reset_less=True)
        for (k, n, sh), hot in zip(classes, hot10):
            with m.If(hot):
                m.d.sync += v11.eq(t10 >> sh if sh > 0 else t10 << -sh)
        dlt, us = saturate(v11, f.update_min, f.update_max)
        d12 = reg(dlt, "upd_d12", signed(f.update_bits))
        us12 = reg(us, "upd_sat12")
        # old value (2) to 12; new value at 13
        PW = max(wb, bb)
        kind2 = delay(r0.kind, 2, "okind")
        old2 = Mux(kind2 == Kind.U0B, b2.as_signed(), wsel2)
        old12 = delay(reg(old2, "old3", signed(PW)), 9, "old")
        # the write enables from registers (ctrl): the kind (data, LUT RAM) matters only under them
        valid12 = delay(r4["valid"], 8, "uvalid", ctrl=True)
        hw12 = delay(hsel0 & (r0.kind == Kind.HWR), 12, "hw", ctrl=True)
        kind12 = delay(r0.kind, 12, "ukind")
        hd12 = r0.hdata                     # hdata is at 12 (ops.LATE_FIELDS)
        nv = old12 + d12
        vw, pw = saturate(nv, f.weight_min, f.weight_max)
        vb, pb = saturate(nv, f.bias_min, f.bias_max)
        isb12 = kind12 == Kind.U0B
        upd12 = valid12 & ((kind12 == Kind.U0) | (kind12 == Kind.UWC) | isb12)
        new13 = reg(Mux(hw12, hd12, Mux(isb12, vb, vw)), "upd_new13", signed(PW))
        m.d.comb += [self.usat.eq(delay(upd12 & us12, 2, "us")),
                     self.psat.eq(delay(upd12 & Mux(isb12, pb, pw), 2, "ps"))]
        wen13 = reg(upd12 | hw12, "upd_en13")
        kind13 = reg(kind12, "ukind13")
        at13 = delay.group(13, "uwr", tgt=r0.target, wa=r0.waddr, g=r0.g)
        tgt13, wa13, g13 = (at13[k] for k in ("tgt", "wa", "g"))
        hw13 = reg(hw12, "hw13")
        is_w13 = Mux(hw13, tgt13 == Target.WEIGHT, (kind13 == Kind.U0) | (kind13 == Kind.UWC))
        is_b13 = Mux(hw13, tgt13 == Target.LANE_BIAS, kind13 == Kind.U0B)
        m.d.comb += [wwr.addr.eq(wa13), wwr.data.eq(new13[:wb]), wwr.en.eq(wen13 & is_w13)]
        m.d.comb += [bwr.addr.eq(g13), bwr.data.eq(new13[:bb]), bwr.en.eq(wen13 & is_b13)]
