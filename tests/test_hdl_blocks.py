"""Each gateware block against the golden fixed-point model (amaranth.sim, equality only).

Helpers: the ARX hash, shift_round in every rounding mode and both shift directions, saturate at
both ends. Components, as hdl/core.py assembles them: the two trees (``SumTree``, ``Broadcast``),
``Lane`` and ``Root``.

A lane is driven with op records (hdl/ops.py ``record_layout``) the way the controller emits them
and hdl/core.py completes them (the pixel list joined into ``waddr``, ``x`` and ``idx``, the root's
operands in ``bval`` / ``bval2``), P lanes side by side as behind the broadcast tree; the root with
the controller's ops and the adder tree's sums at depth ``Plan.DT``. Everything is compared with
``FixedEP``: the input drive, the layer-1 finishes and forward products of every step of a sample,
the lanes' update of W_0, b_0, W_1; the root's output-layer finishes (nudge, clamps, argmax,
settling flags) and its bias update. A sample's ops come at the cycles of the controller's schedule
(``Plan.segments``), the update's back to back; outputs are checked at the stages hdl/lane.py and
hdl/plan.py name, memories read directly. The whole core is proved in Verilator by
tests/test_hdl_core.py.
"""
import random
from collections import Counter

import pytest
import torch
from amaranth.hdl import Elaboratable, Fragment, Module, Shape, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from eqfpga.golden import fixedpoint as fp
from eqfpga.golden.config import load_config
from eqfpga.golden.fixed_model import FixedEP, FixedPhases
from eqfpga.hdl.arx_hash import ArxHash, arx_hash_pipeline, arx_round
from eqfpga.hdl.fixed import SQ, UQ, round_offset, saturate, shape_of, shift_round
from eqfpga.hdl.lane import Lane
from eqfpga.hdl.ops import Kind, Widths, delay_late_fields, record_layout, weight_base
from eqfpga.hdl.plan import (BROADCAST_FANOUT, LANE_FLAGS, LANE_PARAM_WRITE, LANE_STATE_WRITE, LANE_TREE,
                             LANE_UPDATE_FLAGS, N_SLOTS, ROOT_BIAS_WRITE, ROOT_STATE_WRITE, Plan,
                             broadcast_levels, tree_levels)
from eqfpga.hdl.root import Root
from eqfpga.hdl.trees import Broadcast, SumTree


class _Vec(dict):
    """Input vector: signal -> value (Amaranth signals are unhashable, so keyed by identity)."""

    def __init__(self, pairs):
        super().__init__((id(s), v) for s, v in pairs)
        self.pairs = pairs

    def __getitem__(self, sig):
        return super().__getitem__(id(sig))


def _run(m, vectors, check):
    """Drive ``vectors`` (signal -> value) through combinational ``m``; ``check(ctx, vec)``."""
    sim = Simulator(m)
    vectors = [_Vec(list(v.items()) if isinstance(v, _Pairs) else v) for v in vectors]

    async def tb(ctx):
        for vec in vectors:
            for sig, v in vec.pairs:
                ctx.set(sig, v)
            check(ctx, vec)

    sim.add_testbench(tb)
    sim.run()


class _Pairs(list):
    def items(self):
        return list(self)


def V(*pairs):
    """A vector from (signal, value) pairs."""
    return _Pairs(pairs)


def _signed_edges(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return [lo, lo + 1, -1, 0, 1, hi - 1, hi]


def test_arx_hash_matches_golden():
    dut = ArxHash()
    rng = random.Random(1)
    edges = [0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, fp.SIGN_COUNTER]
    pairs = [(k, c) for k in edges for c in edges] + [(rng.getrandbits(32), rng.getrandbits(32)) for _ in range(300)]
    pairs += [(rng.getrandbits(32), fp.random_counter(rng.randrange(15), rng.randrange(1 << 14), rng.randrange(1 << 14), 32))
              for _ in range(100)]
    got = []
    _run(dut, [V((dut.key, k), (dut.ctr, c)) for k, c in pairs], lambda ctx, v: got.append(ctx.get(dut.hash)))
    for (k, c), h in zip(pairs, got):
        assert h == fp.arx_hash(k, c), f"H({k:#x}, {c:#x}) = {h:#x}, golden {fp.arx_hash(k, c):#x}"


@pytest.mark.parametrize("per_stage", [1, 2, 4])
def test_arx_hash_pipeline_matches_golden(per_stage):
    """The registered hash (the core's per-lane random source): one new counter a cycle, each
    result exactly 8 / per_stage cycles later."""
    m = Module()
    key, ctr = Signal(32), Signal(32)
    out = arx_hash_pipeline(m, key, ctr, per_stage=per_stage)
    lat = 8 // per_stage
    rng = random.Random(per_stage)
    k = rng.getrandbits(32)
    ctrs = [0, 0xFFFFFFFF, fp.SIGN_COUNTER] + [rng.getrandbits(32) for _ in range(60)]
    got = []

    async def tb(ctx):
        ctx.set(key, k)
        for t in range(len(ctrs) + lat):
            if t < len(ctrs):
                ctx.set(ctr, ctrs[t])
            await ctx.tick()
            if t + 1 >= lat:
                got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert got[:len(ctrs)] == [fp.arx_hash(k, c) for c in ctrs]


def test_arx_round_by_round():
    """arx_round with a run-time round index (the controller's one-round-a-cycle key hash)."""
    m = Module()
    x, y, k, r = Signal(16), Signal(16), Signal(32), Signal(3)
    xn, yn = arx_round(x, y, k.word_select(r[0], 16), r)
    rng = random.Random(5)
    for _ in range(20):
        kk, c = rng.getrandbits(32), rng.getrandbits(32)
        vec = [(x, c >> 16), (y, c & 0xFFFF), (k, kk)]
        got = []

        async def tb(ctx):
            xv, yv = c >> 16, c & 0xFFFF
            for rr in range(8):
                ctx.set(x, xv), ctx.set(y, yv), ctx.set(k, kk), ctx.set(r, rr)
                xv, yv = ctx.get(xn), ctx.get(yn)
            got.append((xv << 16) | yv)

        sim = Simulator(m)
        sim.add_testbench(tb)
        sim.run()
        assert got == [fp.arx_hash(kk, c)], vec


def test_shapes_from_formats():
    assert shape_of(UQ(1, 8)) == unsigned(9)
    assert shape_of(SQ(3, 12)) == signed(16)
    with pytest.raises(TypeError, match="UQ or SQ"):
        shape_of(16)


@pytest.mark.parametrize("mode", ["truncate", "nearest", "stochastic"])
@pytest.mark.parametrize("sh", [-3, 0, 1, 5, 11])
def test_shift_round_matches_golden(mode, sh):
    bits = 20
    v, rnd = Signal(signed(bits)), Signal(32)
    out = Signal(signed(bits + 8))
    m = Module()
    m.d.comb += out.eq(shift_round(v, sh, round_offset(sh, mode, rnd)))
    rng = random.Random(sh * 7 + len(mode))
    vals = _signed_edges(bits) + [rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(150)]
    vecs = [V((v, x), (rnd, rng.getrandbits(32))) for x in vals] + [V((v, x), (rnd, r)) for x in vals[:7]
                                                                for r in (0, 0xFFFFFFFF)]
    def check(ctx, vec):
        want = fp.shift_round(vec[v], sh, mode, vec[rnd])
        assert ctx.get(out) == want, f"shift_round({vec[v]}, {sh}, {mode}, {vec[rnd]:#x})"
    _run(m, vecs, check)


def test_saturate_both_ends():
    v = Signal(signed(12))
    out, flag = Signal(signed(12)), Signal()
    m = Module()
    o, f = saturate(v, -100, 300)
    m.d.comb += [out.eq(o), flag.eq(f)]
    vals = list(range(-2048, 2048, 7)) + [-2048, -101, -100, -99, 0, 299, 300, 301, 2047]
    def check(ctx, vec):
        want, clamped = fp.saturate(vec[v], -100, 300)
        assert (ctx.get(out), ctx.get(flag)) == (want, int(clamped)), vec[v]
    _run(m, [V((v, x)) for x in vals], check)
    with pytest.raises(ValueError, match="lo <= hi"):
        saturate(v, 3, 1)




# ---- the components: shared ----------------------------------------------------------------------

def _clocked(dut, tb):
    """Simulate ``dut`` under the clock of ``sync`` (a toggle keeps the domain when ``dut`` has no
    register, a one-lane tree) with testbench ``tb``."""
    top = Module()
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


TINY = load_config("tiny")
CONFIGS = {
    # the preset: nearest state and update rounding, P = 4, one-sided nudging
    "tiny": TINY,
    # P = 3 does not divide s_1 = 7; stochastic updates (every shift > 0), saturating (6-bit
    # updates); random-sign nudging with beta < 0 (the nudge's neg, the update's gneg); a free
    # phase too short to settle (the settling flags)
    "p3": TINY.replace(parallelism=3, nudging="random_sign", lrs=(0.0625, 0.25), T1=3, T2=2,
                       fixed={"update_rounding": "stochastic", "update_bits": 6}),
    # state_frac 9 > input_frac 6, truncating states and updates; symmetric nudging (three phases);
    # update shifts < 0 and 0; T1 = 2 (s_(T1-2) is the zero state)
    "frac": TINY.replace(nudging="symmetric", lrs=(4.0, 2.0), T1=2, T2=3,
                         fixed={"input_frac": 6, "state_frac": 9, "state_rounding": "truncate",
                                "update_rounding": "truncate", "update_bits": 8}),
    # more lanes than layer-1 neurons (one group, lanes owning nothing, two broadcast levels, four
    # tree levels), ten output neurons: a step's forward segment (10 ops) follows the previous one
    # without a gap; T1 = 1 (the free phase's only step is the last)
    "wide": TINY.replace(sizes=(12, 4, 10), parallelism=9, T1=1, T2=3),
}
# every stochastic shift <= 8 and P = 4: four lanes share one hash word (docs/fixed-point.md), a
# lane owning no neuron of the last group among them
CONFIGS["share"] = TINY.replace(parallelism=4, nudging="random_sign",
                                fixed={"update_rounding": "stochastic", "weight_bits": 16, "weight_frac": 12,
                                       "bias_bits": 16, "bias_frac": 6, "update_bits": 10, "acc_bits": 40})
# T1 = 2 and one group a lane: step 2's forward segment follows step 1's (test_root_settling_one_group)
CONFIGS["wide2"] = CONFIGS["wide"].replace(T1=2, parallelism=4)
MAIN = ("tiny", "p3", "frac", "wide")
SIGN = {"tiny": 1, "p3": -1, "frac": 1, "wide": 1, "wide2": 1, "share": -1}      # sigma of the nudged phase
# hdl/root.py masks the old states s_(t-1), s_(t-2) of a finishing neuron (read at depth DT - 3, data
# at DT - 2) with the zero / zero2 flags of op(DT - 1): the op emitted one cycle before. With one
# lane group (P >= s_(N-1)) every FWD op finishes its neuron, and the first op of a step that
# directly follows an op of the previous step takes that step's flags: T1 = 1, the nudge of
# nudged step 1 sees s = 0 for neuron 0; T1 = 2, moved compares s_2 with 0. (op(DT - 2) is right.)
SAMPLE = 5                                   # the sample counter t that keys the random source
LANE_OUTS = ("tree", "lo", "hi", "mv", "mv2", "usat", "psat")


def _net(cfg, seed, ends=0.03):
    """A FixedEP with random parameters in about [-1.5, 1.5], a fraction ``ends`` of them at their
    format's ends."""
    g = torch.Generator().manual_seed(seed + 100 * list(CONFIGS.values()).index(cfg))
    f, s = cfg.fixed, cfg.sizes

    def draw(shape, frac, lo, hi):
        v = torch.randint(-(3 << frac) // 2, (3 << frac) // 2 + 1, shape, generator=g)
        at_end = torch.where(torch.rand(shape, generator=g) < 0.5, lo, hi)
        return torch.where(torch.rand(shape, generator=g) < ends, at_end, v).clamp(lo, hi)

    W = [draw((1, s[n + 1], s[n]), f.weight_frac, f.weight_min, f.weight_max) for n in range(cfg.n_layers)]
    B = [draw((1, s[n + 1]), f.bias_frac, f.bias_min, f.bias_max) for n in range(cfg.n_layers)]
    return FixedEP(cfg, weights=W, biases=B)


def _params(net):
    """The net's parameters as lists: W_n rows, b_n."""
    return [w[0].tolist() for w in net.weights], [b[0].tolist() for b in net.biases]


def _pixels(cfg, rng):
    """One image: about a third zero pixels, pixel 0 zero, pixel 1 at the maximum."""
    top = (1 << cfg.fixed.input_frac) - 1
    x = [0 if rng.random() < 0.35 else rng.randint(1, top) for _ in range(cfg.sizes[0])]
    x[0], x[1] = 0, top
    return x


def _signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


class _Keep:
    """Keeps the module ``elaborate`` built, so that a test reaches the component's memories."""

    def elaborate(self, platform):
        self.mod = super().elaborate(platform)
        return self.mod


class _Lane(_Keep, Lane):
    pass


class _Root(_Keep, Root):
    pass


def _words(ctx, dut, name):
    mem = dut.mod.submodules[name]
    return [ctx.get(mem.data[a]) for a in range(mem.depth)]


class _Lanes(Elaboratable):
    """The P lanes of a plan behind one record, as behind the broadcast tree, holding ``net``'s
    parameters (the constructor's ``weights`` / ``biases``)."""

    def __init__(self, pl, net, delay_ram=None):
        self.pl = pl
        self.rec = Signal(record_layout(Widths(pl)))
        self.key, self.gneg = Signal(32), Signal()
        W, B = _params(net)
        self.lanes = [_Lane(pl, p, weights=W, biases=B, delay_ram=delay_ram) for p in range(pl.P)]

    def elaborate(self, platform):
        m = Module()
        rec = delay_late_fields(m, self.rec)     # as the core delays them before the broadcast tree
        # as the core's record register: the op's address within its layer -> the lane's weight memory
        rec2 = Signal.like(rec)
        m.d.comb += [rec2.eq(rec), rec2.waddr.eq(self.rec.waddr + weight_base(m, self.pl, self.rec.wl))]
        rec = rec2
        for p, ln in enumerate(self.lanes):
            m.submodules[f"lane{p}"] = ln
            m.d.comb += [ln.rec.eq(rec), ln.key.eq(self.key), ln.gneg.eq(self.gneg)]
            if p % self.pl.hash_share:      # the lanes that share a hash word read it from the first
                m.d.comb += ln.rnd_in.eq(self.lanes[p - p % self.pl.hash_share].rnd_out)
        return m

    def watch(self):
        return [((p, k), getattr(ln, k)) for p, ln in enumerate(self.lanes) for k in LANE_OUTS]

    def unowned(self):
        """(lane, memory, address) of every word a lane keeps for a neuron it does not own (g*P + p
        beyond the layer)."""
        pl, s = self.pl, self.pl.sizes
        out = []
        for p in range(pl.P):
            for k in pl.lane_layers:
                for g in range(pl.lane_groups(k, p), pl.blocks(k)):
                    if k == 1:
                        out += [(p, "w", g * s[0] + j) for j in range(s[0])] + [(p, "b0", g), (p, "d0", g)]
                    else:
                        out.append((p, f"fb{k}", g))
                    out += [(p, "w", pl.w_base(k) + g * s[k + 1] + m) for m in range(s[k + 1])]
                    out += [(p, "st" if k == 1 else "cp", pl.lane_state_addr(sl, k, g)) for sl in range(N_SLOTS)]
        return out

    def fill_unowned(self, ctx, seed):
        """Random non-zero words where a lane owns no neuron: the lane must neither use nor change them
        (its ``valid``); returns {(lane, memory, address): word}."""
        rng = random.Random(seed)
        words = {}
        for p, name, addr in self.unowned():
            mem = self.lanes[p].mod.submodules[name]
            words[p, name, addr] = v = rng.randrange(1, 1 << Shape.cast(mem.shape).width)
            ctx.set(mem.data[addr], v)
        return words


class _Timeline:
    """What a testbench drives, cycle by cycle: one op a cycle on ``port`` (a NOP when idle), other
    inputs at given cycles (0 otherwise), snapshots (``fn(ctx)``) at the start of given cycles."""

    def __init__(self, port):
        self.port, self.ops, self.inputs, self.snaps = port, [], [], {}

    @property
    def now(self):
        return len(self.ops)

    def wait_until(self, cycle):
        self.ops += [{}] * max(0, cycle - self.now)

    def emit(self, ops):
        """Ops from now on, one a cycle; returns the first one's cycle."""
        c = self.now
        members = self.port.shape().members
        self.ops += [{k: v for k, v in op.items() if k in members} for op in ops]
        return c

    def put(self, cycle, sig, value):
        self.inputs.append((cycle, sig, value))

    def snap(self, cycle, key, fn):
        self.snaps.setdefault(cycle, []).append((key, fn))

    def run(self, top, watch, tail, setup=None):
        """Simulate; returns ([{key: value of ``watch``} per cycle], {snapshot key: fn(ctx)})."""
        end = max([self.now + tail] + [c + 1 for c in self.snaps])
        by_cycle, driven = {}, {}
        for c, sig, v in self.inputs:
            by_cycle.setdefault(c, []).append((sig, v))
            driven[id(sig)] = sig
        trace, taken = [], {}

        async def tb(ctx):
            if setup:
                setup(ctx)
            for c in range(end):
                for key, fn in self.snaps.get(c, []):
                    taken[key] = fn(ctx)
                ctx.set(self.port, self.ops[c] if c < self.now else {})
                for sig in driven.values():
                    ctx.set(sig, 0)
                for sig, v in by_cycle.get(c, []):
                    ctx.set(sig, v)
                trace.append({k: ctx.get(s) for k, s in watch})
                await ctx.tick()

        _clocked(top, tb)
        return trace, taken


# ---- the ops, as the controller emits them (hdl/controller.py) and hdl/core.py completes them -----

def _nz(x):
    return [(j, v) for j, v in enumerate(x) if v]


def _d0_ops(pl, x):
    """Segment D0: per group g, one D0MAC per non-zero pixel j (record: waddr g*s_0 + j, x, idx j);
    one with x = 0 when there is none."""
    s0, P = pl.sizes[0], pl.P
    pix = _nz(x) or [(0, 0)]
    return [dict(kind=Kind.D0MAC, gl=1, wl=0, g=g, gp=g * P, waddr=g * s0 + j, x=v, idx=j, clear=e == 0,
                 last=e == len(pix) - 1)
            for g in range(pl.blocks(1)) for e, (j, v) in enumerate(pix)]


def _h_ops(pl, st, s2):
    """Segment H of step ``st``: per group g, one FB op per neuron m of layer 2 (W_1[m][g*P + p]
    times the broadcast s_2[m] of the previous step), the finish in the last."""
    s, P = pl.sizes, pl.P
    return [dict(kind=Kind.FB, gl=1, wl=1, layer=1, waddr=g * s[2] + m, g=g, gp=g * P,
                 sa=pl.lane_state_addr(st["rslot"], 1, g), sb=pl.lane_state_addr(st["wslot"], 1, g),
                 zero=st["zero"], zero2=st["zero2"], zero_op=st["zero"], clear=m == 0, last=m == s[2] - 1,
                 lastfree=st["lastfree"], bval=0 if st["zero"] else s2[m])
            for g in range(pl.blocks(1)) for m in range(s[2])]


def _fwd_ops(pl, st, k, neg):
    """Segment O_k of step ``st``: per neuron i of layer k, one FWD op per group g of layer k - 1
    (the lanes' products W_(k-1)[i][g*P + p] s_(k-1)[g*P + p] into the tree), the finish in the last."""
    s, P, N = pl.sizes, pl.P, pl.N
    G = pl.blocks(k - 1)
    return [dict(kind=Kind.FWD, gl=k - 1, wl=k - 1, layer=k, i=i, waddr=g * s[k] + i, g=g, gp=g * P,
                 sa=pl.lane_state_addr(st["rslot"], k - 1, g), zero=st["zero"], zero2=st["zero2"],
                 clear=g == 0, last=g == G - 1, lastfree=st["lastfree"],
                 rb=pl.root_state_offsets[k] + i, rsa=pl.root_state_addr(st["rslot"], k, i),
                 rsb=pl.root_state_addr(st["wslot"], k, i), nudge=st["phase"] != "free" and k == N, neg=neg)
            for i in range(s[k]) for g in range(G)]


def _u0_ops(pl, x):
    """Segment U0: per group, U0B (b_0), then U0 at every non-zero pixel j (W_0 row word j)."""
    s0, P = pl.sizes[0], pl.P
    a, c = pl.update_slots
    ops = []
    for g in range(pl.blocks(1)):
        base = dict(gl=1, g=g, gp=g * P, sa=pl.lane_state_addr(a, 1, g), sb=pl.lane_state_addr(c, 1, g))
        ops.append(dict(base, kind=Kind.U0B))
        ops += [dict(base, kind=Kind.U0, wl=0, waddr=g * s0 + j, x=v, idx=j) for j, v in _nz(x)]
    return ops


def _uw_ops(pl, n, a_next, c_next):
    """Segment UW_n: per group g and neuron m of layer n + 1, UWA (a_(n+1)[m] a_n[i]) then UWC
    (c_(n+1)[m] c_n[i], round, write W_n[m][i]); the root's operands in bval / bval2."""
    s, P = pl.sizes, pl.P
    a, c = pl.update_slots
    return [dict(kind=kind, gl=n, wl=n, g=g, gp=g * P, sa=pl.lane_state_addr(a, n, g),
                 sb=pl.lane_state_addr(c, n, g), waddr=g * s[n + 1] + m, idx=m, bval=a_next[m], bval2=c_next[m])
            for g in range(pl.blocks(n)) for m in range(s[n + 1]) for kind in (Kind.UWA, Kind.UWC)]


def _ubr_ops(pl):
    """Segments UB_n: one UBR a root bias b_n[i], reading a_(n+1)[i] and c_(n+1)[i] in the root."""
    a, c = pl.update_slots
    return [dict(kind=Kind.UBR, layer=n, i=i, rb=pl.root_state_offsets[n + 1] + i,
                 ra=pl.root_state_addr(a, n + 1, i), rc=pl.root_state_addr(c, n + 1, i))
            for n in range(1, pl.N) for i in range(pl.sizes[n + 1])]


def _schedule(pl, x, neg_nudged=False):
    """The ops of a sample's input drive and steps, at the cycles ``Plan.segments`` gives them (the
    controller's schedule; the update segments left out): [(cycle, op, step index or None)]."""
    steps = pl.steps(learn=True)
    index = {(st["phase"], st["step"]): u for u, st in enumerate(steps)}
    out = []
    for sg in pl.segments(len(_nz(x)), learn=True):
        if sg.name.startswith("U"):
            continue
        u = index.get((sg.phase, sg.step))
        st = steps[u] if u is not None else None
        if sg.name == "D0":
            ops = _d0_ops(pl, x)
        elif sg.name == "H":
            ops = _h_ops(pl, st, [0] * pl.sizes[2])
        else:
            assert sg.name == f"O{pl.N}" and pl.N == 2, sg
            ops = _fwd_ops(pl, st, pl.N, st["phase"] == "negative" or (st["phase"] == "nudged" and neg_nudged))
        assert len(ops) == sg.ops, sg
        out += [(sg.start + q, op, u) for q, op in enumerate(ops)]
    return out


# ---- golden references ---------------------------------------------------------------------------

def _sample(name, seed, net=None, x=None):
    """(cfg, plan, net, image, label, FixedPhases, the trace of every step as lists [u][k - 1][i])."""
    cfg = CONFIGS[name]
    pl, net = Plan(cfg), net or _net(cfg, seed)
    rng = random.Random(seed + 100 * list(CONFIGS).index(name))
    x = _pixels(cfg, rng) if x is None else x
    label = rng.randrange(cfg.sizes[-1])
    ph = net.phases(torch.tensor([x]), net.encode_target(torch.tensor([label])),
                    torch.tensor([SIGN[name]]), keep_trace=True)
    trace = [[t[0, 0].tolist() for t in states] for states in ph.trace]
    assert len(trace) == len(pl.steps(learn=True))
    return cfg, pl, net, x, label, ph, trace


def _prev(cfg, trace, u, st):
    """The states step ``u`` starts from (layer k at [k - 1]): zeros, the previous step's, or the
    free phase's result for the first nudged / negative step."""
    if st["zero"]:
        return [[0] * n for n in cfg.sizes[1:]]
    return trace[cfg.T1 - 1] if st["phase"] != "free" and st["step"] == 1 else trace[u - 1]


def _phase_states(cfg, rng):
    """Random nudged (a) and free (c) states of layers 1..N, [k - 1][i]: 0, 1.0 or any value; c
    equal to a (D = 0), near it (small D: the rounding decides), or anything."""
    one = cfg.fixed.state_one
    a = [[rng.choice([0, one, rng.randint(0, one)]) for _ in range(n)] for n in cfg.sizes[1:]]
    c = [[rng.choice([v, min(max(v + rng.randint(-40, 40), 0), one), min(max(v + rng.randint(-40, 40), 0), one),
                      rng.randint(0, one)]) for v in row] for row in a]
    return a, c


def _ref_update(cfg, W, B, x, a, c, sigma, key):
    """The spec's update (docs/fixed-point.md, "Update"), one parameter at a time: {("W", n, i, j) or
    ("b", n, i): (new value, update saturated, parameter saturated)}; a[k - 1], c[k - 1]: layer k."""
    f, s = cfg.fixed, cfg.sizes
    out = {}

    def one(old, D, sh, uv, lo, hi):
        rnd = fp.update_random(key, n, *uv, max(sh, 0)) if f.update_rounding == "stochastic" else None
        d, us = fp.saturate(fp.shift_round(D, sh, f.update_rounding, rnd), f.update_min, f.update_max)
        v, ps = fp.saturate(old + d, lo, hi)
        return v, bool(us), bool(ps)

    for n, (sh_w, sh_b) in enumerate(cfg.update_shifts()):
        pa, pc = (x, x) if n == 0 else (a[n - 1], c[n - 1])
        for i in range(s[n + 1]):
            for j in range(s[n]):
                D = sigma * (a[n][i] * pa[j] - c[n][i] * pc[j])
                out["W", n, i, j] = one(W[n][i][j], D, sh_w, fp.owner_index(n, i, j), f.weight_min, f.weight_max)
            out["b", n, i] = one(B[n][i], sigma * (a[n][i] - c[n][i]), sh_b, (i, fp.BIAS_INDEX),
                                 f.bias_min, f.bias_max)
    return out


def _golden_update(name, cfg, net, x, a, c):
    """FixedEP.update with nudged states ``a`` and free (or negative) states ``c``; checks the spec
    reference against it (every parameter, every counter); returns the reference."""
    sym = cfg.nudging == "symmetric"
    sigma = 1 if sym else SIGN[name]
    W, B = _params(net)
    ref = _ref_update(cfg, W, B, x, a, c, sigma, fp.sample_key(cfg.seed, SAMPLE))
    t = [torch.tensor([[v]]) for v in a], [torch.tensor([[v]]) for v in c]
    zero = torch.zeros(1, dtype=torch.int64)
    ph = FixedPhases(free=t[1], nudged=t[0], negative=t[1] if sym else None, sign=torch.tensor([sigma]),
                     residual=zero, cycling=zero.bool())
    net.update(torch.tensor([x]), ph, SAMPLE)
    W2, B2 = _params(net)
    for n in range(cfg.n_layers):
        assert [[ref["W", n, i, j][0] for j in range(cfg.sizes[n])] for i in range(cfg.sizes[n + 1])] == W2[n]
        assert [ref["b", n, i][0] for i in range(cfg.sizes[n + 1])] == B2[n]
        cnt = net.counters
        assert sum(v[1] for k, v in ref.items() if k[1] == n) == int(cnt.update_sat[n][0])
        assert sum(v[2] for k, v in ref.items() if k[:2] == ("W", n)) == int(cnt.weight_sat[n][0])
        assert sum(v[2] for k, v in ref.items() if k[:2] == ("b", n)) == int(cnt.bias_sat[n][0])
    return ref


def _lane_image(pl, p, W, B):
    """The words of lane p's w (every layer) and b0 memories holding W (rows) and b_0."""
    f = pl.cfg.fixed
    img = {"w": [0] * pl.w_words}
    img["b0"] = [0] * max(2, pl.blocks(1))
    for n in range(pl.N):
        for i, row in enumerate(W[n]):
            for j, v in enumerate(row):
                lane, addr = pl.weight_addr(n, i, j)
                if lane == p:
                    img["w"][addr] = v & ((1 << f.weight_bits) - 1)
    for i, v in enumerate(B[0]):
        lane, addr = pl.bias_addr(0, i)
        if lane == p:
            img["b0"][addr] = v & ((1 << f.bias_bits) - 1)
    return img


# ---- trees ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("P", [1, 2, 3, 7, 8, 64])
@pytest.mark.parametrize("shape", [unsigned(1), unsigned(9), signed(9)], ids=["u1", "u9", "s9"])
def test_sum_tree(P, shape):
    """o = the exact sum of i[0..P-1] exactly tree_levels(P) cycles later, a new vector every cycle,
    the inputs' extremes included (one bit wider a level: nothing wraps)."""
    dut = SumTree(shape, P)
    L = tree_levels(P)
    assert dut.levels == L and dut.out_shape.width == shape.width + L and dut.out_shape.signed == shape.signed
    lo, hi = (-(1 << shape.width - 1), (1 << shape.width - 1) - 1) if shape.signed else (0, (1 << shape.width) - 1)
    rng = random.Random(P * 10 + shape.width + shape.signed)
    vecs = [[lo] * P, [hi] * P] + [[rng.randint(lo, hi) for _ in range(P)] for _ in range(30)]
    assert _sum_tree_outputs(dut, vecs, L) == [sum(v) for v in vecs]


def _sum_tree_outputs(dut, vecs, L):
    """Feed one vector a cycle into ``dut`` (zeros after); its outputs, L cycles later each."""
    P, got = len(vecs[0]), []

    async def tb(ctx):
        for c in range(len(vecs) + L):
            for p in range(P):
                ctx.set(dut.i[p], vecs[c][p] if c < len(vecs) else 0)
            if c >= L:
                got.append(ctx.get(dut.o))
            await ctx.tick()

    _clocked(dut, tb)
    return got


@pytest.mark.parametrize("P", [1, 2, 3, 7, 8, 64])
def test_sum_tree_no_grow(P):
    """grow=False (the adder tree of the accumulator-wide products): the output keeps the input width,
    and sums that fit it (the accumulator bound) are exact, tree_levels(P) cycles later."""
    A = 28
    dut = SumTree(signed(A), P, grow=False)
    assert dut.out_shape == signed(A)
    lim = ((1 << (A - 1)) - 1) // P
    rng = random.Random(P)
    vecs = [[lim] * P, [-lim] * P] + [[rng.randint(-lim, lim) for _ in range(P)] for _ in range(30)]
    L = tree_levels(P)
    assert _sum_tree_outputs(dut, vecs, L) == [sum(v) for v in vecs]


@pytest.mark.parametrize("P, leaf", [(1, 4), (2, 4), (3, 4), (7, 4), (8, 4), (9, 4), (64, 4), (65, 4),
                                     (9, 1), (64, 1), (64, 2), (130, 4)])
def test_broadcast(P, leaf):
    """Every lane gets the record exactly broadcast_levels(P, leaf) cycles later (a new one every
    cycle); structurally, every register level is driven from the one above, no register (nor the
    input) drives more than BROADCAST_FANOUT registers, and the last level has one register for
    each ``leaf`` neighbouring lanes."""
    layout = data.StructLayout({"a": unsigned(5), "b": signed(11), "c": 1})
    dut = Broadcast(layout, P, leaf=leaf)
    LB = broadcast_levels(P, leaf)
    assert dut.levels == LB
    rng = random.Random(P)
    vals = [rng.getrandbits(layout.size) for _ in range(20)]
    got = []

    async def tb(ctx):
        for c in range(len(vals) + LB):
            ctx.set(dut.i.as_value(), vals[c] if c < len(vals) else 0)
            if c >= LB:
                got.append([ctx.get(dut.o[p].as_value()) for p in range(P)])
            await ctx.tick()

    _clocked(dut, tb)
    assert got == [[v] * P for v in vals]

    ref = Broadcast(layout, P, leaf=leaf)
    frag = Fragment.get(ref, None)
    src = {}                          # id(register) -> what drives it (signals are unhashable)
    for st in frag.statements["sync"]:
        assert type(st).__name__ == "Assign" and isinstance(st.lhs, Signal) and isinstance(st.rhs, Signal)
        src[id(st.lhs)] = st.rhs
    assert max(Counter(id(r) for r in src.values()).values()) <= BROADCAST_FANOUT
    outs = [st.rhs for st in frag.statements["comb"]]
    assert len(outs) == P and len({id(r) for r in outs}) == -(-P // leaf)
    assert all(outs[p] is outs[p - p % leaf] for p in range(P))      # neighbours share a leaf
    for r in outs:                    # each lane's register: LB registers below the input
        depth = 0
        while id(r) in src:
            r, depth = src[id(r)], depth + 1
        assert depth == LB and r is ref.i.as_value()


# ---- Lane ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("ends", [0.03, 1.0], ids=["random", "extreme"])
@pytest.mark.parametrize("name", MAIN)
def test_lane_input_drive(name, ends):
    """D0 (D0MAC over the non-zero pixels, d0 stored by the last): every lane's d0 memory holds
    FixedEP.input_drive of its neurons, for random images, an image without a non-zero pixel, every
    pixel at its maximum and one pixel alone, each read by the time the plan's d0 guard lets an op use
    it; random weights, or every weight at its format's ends (the accumulator's extremes). Words
    of neurons a lane does not own keep their (random) contents; nothing reaches the tree or the
    flags."""
    cfg = CONFIGS[name]
    pl, net = Plan(cfg), _net(cfg, 1, ends)
    s0, P, A = cfg.sizes[0], pl.P, pl.acc_width
    rng = random.Random(2)
    top = (1 << cfg.fixed.input_frac) - 1
    images = [_pixels(cfg, rng), _pixels(cfg, rng), [0] * s0, [top] * s0, [0] * (s0 - 1) + [1]]
    dut = _Lanes(pl, net)
    tl = _Timeline(dut.rec)
    for u, x in enumerate(images):
        ops = _d0_ops(pl, x)
        tl.wait_until(tl.emit(ops) + len(ops) - 1 + pl.guards()["d0"])
        tl.snap(tl.now, u, lambda ctx: [_words(ctx, ln, "d0") for ln in dut.lanes])
    junk = {}
    trace, got = tl.run(dut, dut.watch(), tail=2, setup=lambda ctx: junk.update(dut.fill_unowned(ctx, 7)))
    for u, x in enumerate(images):
        want = net.input_drive(torch.tensor([x]))[0, 0].tolist()
        for p in range(P):
            exp = [want[g * P + p] if g * P + p < cfg.sizes[1] else _signed(junk[p, "d0", g], A)
                   for g in range(pl.blocks(1))]
            assert [_signed(v, A) for v in got[u][p][:pl.blocks(1)]] == exp, (u, p)
    assert not any(any(row.values()) for row in trace)


def _lane_steps(name, net=None, x=None):
    """A sample's input drive and every step (free, nudged, negative) as the lanes run them, at the
    cycles of the controller's schedule (``Plan.segments``): D0, then per step H (FB over the
    broadcast s_2[m], ``last`` on the final one) and O2 (the forward products into layer 2).

    * the state each finish writes (stage 7, into its slot) is FixedEP's, at every step;
    * the tree input (stage 5) of a FWD op is W_1[i][g*P + p] s_1[g*P + p] of the previous step's
      state, read from the lane's own memory (0 in a lane owning no such neuron), else 0;
    * the clamp flags (stage 8) add up to FixedEP's act_low / act_high of layer 1, each on a finish
      that wrote 0 / 1; mv, mv2 (stage 8) flag exactly the neurons whose s_T1 != s_(T1-1),
      s_T1 != s_(T1-2) on the last free step's finishes; no update flag;
    * the words of neurons a lane does not own (random) are neither used nor changed, the states
      of the previous sample (random) not used (zero, zero2)."""
    cfg, pl, net, x, label, ph, trace = _sample(name, 3, net, x)
    s, P = cfg.sizes, pl.P
    W, _ = _params(net)
    dut = _Lanes(pl, net)
    tl = _Timeline(dut.rec)
    steps = pl.steps(learn=True)
    want_tree, finishes = {}, {}            # cycle -> per-lane tree input; cycle -> (u, g) of a finish
    for c, op, u in _schedule(pl, x):
        tl.wait_until(c)
        if op["kind"] == Kind.FB:
            prev = _prev(cfg, trace, u, steps[u])
            op = dict(op, bval=0 if op["zero"] else prev[1][op["waddr"] % s[2]])
            if op["last"]:
                finishes[c] = (u, op["g"])
                tl.snap(c + LANE_STATE_WRITE + 1, (u, op["g"]),
                        lambda ctx: [_words(ctx, ln, "st") for ln in dut.lanes])
        elif op["kind"] == Kind.FWD:
            prev = _prev(cfg, trace, u, steps[u])
            js = [op["g"] * P + p for p in range(P)]
            want_tree[c + LANE_TREE] = [W[1][op["i"]][j] * prev[0][j] if j < s[1] else 0 for j in js]
        tl.emit([op])
    junk = {}

    def setup(ctx):
        junk.update(dut.fill_unowned(ctx, 8))
        rng = random.Random(9)          # the previous sample's states: zero, zero2 must hide them
        for p, ln in enumerate(dut.lanes):
            for slot in range(N_SLOTS):
                for g in range(pl.lane_groups(1, p)):
                    ctx.set(ln.mod.submodules["st"].data[pl.lane_state_addr(slot, 1, g)],
                            rng.randint(0, cfg.fixed.state_one))

    trace_hw, snaps = tl.run(dut, dut.watch(), tail=LANE_FLAGS + 2, setup=setup)

    T1, one = cfg.T1, cfg.fixed.state_one
    zeros = [0] * s[1]
    moved = [a != b for a, b in zip(trace[T1 - 1][0], trace[T1 - 2][0] if T1 >= 2 else zeros)]
    moved2 = [a != b for a, b in zip(trace[T1 - 1][0], trace[T1 - 3][0] if T1 >= 3 else zeros)]
    for u, st in enumerate(steps):
        for p in range(P):
            for g in range(pl.blocks(1)):
                words = snaps[u, g][p]
                if g < pl.lane_groups(1, p):
                    assert words[pl.lane_state_addr(st["wslot"], 1, g)] == trace[u][0][g * P + p], (u, p, g)
                assert all(words[a] == v for (q, m, a), v in junk.items() if q == p and m == "st")
    lows = highs = 0
    for c, row in enumerate(trace_hw):
        assert [row[p, "tree"] for p in range(P)] == want_tree.get(c, [0] * P), c
        assert not any(row[p, k] for p in range(P) for k in ("usat", "psat"))
        fin = finishes.get(c - LANE_FLAGS)
        for p in range(P):
            flags = {k: row[p, k] for k in ("lo", "hi", "mv", "mv2")}
            if fin is None or fin[1] * P + p >= s[1]:
                assert not any(flags.values()), (c, p)
                continue
            u, i = fin[0], fin[1] * P + p
            assert (flags["mv"], flags["mv2"]) == ((moved[i], moved2[i]) if steps[u]["lastfree"] else (0, 0)), (c, p)
            assert not flags["lo"] or trace[u][0][i] == 0
            assert not flags["hi"] or trace[u][0][i] == one
            lows, highs = lows + flags["lo"], highs + flags["hi"]
    assert (lows, highs) == (int(net.counters.act_low[0][0]), int(net.counters.act_high[0][0]))
    return trace


@pytest.mark.parametrize("name", MAIN)
def test_lane_steps(name):
    """``_lane_steps`` with random parameters (3% at their ends) and a random image."""
    _lane_steps(name)


@pytest.mark.parametrize("name", MAIN)
def test_lane_finish_edges(name):
    """``_lane_steps`` where the pre-activations hit the clamp edges exactly: no weight, no pixel,
    b_0 around 0 and around 1.0 (in bias LSBs), so that pre = -1, 0, one, one + 1, ... ."""
    cfg = CONFIGS[name]
    f, s = cfg.fixed, cfg.sizes
    ob = 1 << f.bias_frac
    b0 = [-1, 0, ob, ob + 1, 1, ob - 1, f.bias_max][:s[1]]
    W = [torch.zeros(1, s[n + 1], s[n], dtype=torch.int64) for n in range(cfg.n_layers)]
    B = [torch.tensor([b0])] + [torch.zeros(1, s[n + 1], dtype=torch.int64) for n in range(1, cfg.n_layers)]
    trace = _lane_steps(name, FixedEP(cfg, weights=W, biases=B), [0] * s[0])
    assert {0, f.state_one} <= set(trace[0][0])


@pytest.mark.parametrize("name, delay_ram", [(n, None) for n in MAIN] + [(MAIN[0], False), ("share", None)])
def test_lane_update(name, delay_ram):
    """The update as the lanes run it: U0 (U0B, then U0 at each non-zero pixel) and UW_1 (UWA / UWC
    pairs), back to back, from random nudged and free (negative) states seeded into the lanes'
    state slots, the root's layer-2 states in the records, the sample's key (stochastic rounding)
    and gneg (sigma = -1). The memories (W_0, b_0, W_1 of every lane) hold FixedEP.update's
    parameters; the whole memories are compared, before too, so that the words of neurons a lane
    does not own (random, as its states there) are unchanged. usat / psat (stage 14) flag exactly
    the parameters whose rounded update / new value saturated (the sums equal FixedEP's counters).
    ``delay_ram=False``: the update's long delays in registers (as on an iCE40), not LUT RAM."""
    cfg = CONFIGS[name]
    pl, net = Plan(cfg), _net(cfg, 4, ends=0.25)
    s, P = cfg.sizes, pl.P
    rng = random.Random(4 + 100 * list(CONFIGS).index(name))
    x = _pixels(cfg, rng)
    a, c = _phase_states(cfg, rng)
    W0, B0 = _params(net)
    ref = _golden_update(name, cfg, net, x, a, c)
    W1, B1 = _params(net)

    dut = _Lanes(pl, _net(cfg, 4, ends=0.25), delay_ram)     # the same parameters, before the update
    sa, sc = pl.update_slots
    junk = {}

    def setup(ctx):
        ctx.set(dut.key, fp.sample_key(cfg.seed, SAMPLE))
        ctx.set(dut.gneg, int(cfg.nudging != "symmetric" and SIGN[name] < 0))
        junk.update(dut.fill_unowned(ctx, 9))
        for p, ln in enumerate(dut.lanes):
            mem = ln.mod.submodules["st"]
            for g in range(pl.lane_groups(1, p)):
                ctx.set(mem.data[pl.lane_state_addr(sa, 1, g)], a[0][g * P + p])
                ctx.set(mem.data[pl.lane_state_addr(sc, 1, g)], c[0][g * P + p])

    names = ["w", "b0"]

    def image(ctx):
        return [{k: _words(ctx, ln, k) for k in names} for ln in dut.lanes]

    def expect(p, W, B):
        img = _lane_image(pl, p, W, B)
        for (q, m, addr), v in junk.items():
            if q == p and m in img:
                img[m][addr] = v
        return img

    tl = _Timeline(dut.rec)
    tl.snap(0, "before", image)
    ops = _u0_ops(pl, x) + _uw_ops(pl, 1, a[1], c[1])
    tl.emit(ops)
    tl.snap(tl.now - 1 + LANE_PARAM_WRITE + 1, "after", image)
    trace, snaps = tl.run(dut, dut.watch(), tail=LANE_UPDATE_FLAGS + 2, setup=setup)

    for p in range(P):
        assert snaps["before"][p] == expect(p, W0, B0), p
        assert snaps["after"][p] == expect(p, W1, B1), p
    want = {}                                   # (cycle, lane) -> (usat, psat)
    for e, op in enumerate(ops):
        for p in range(P):
            i = op["g"] * P + p
            key = {Kind.U0B: ("b", 0, i), Kind.U0: ("W", 0, i, op.get("idx")),
                   Kind.UWC: ("W", 1, op.get("idx"), i)}.get(op["kind"])
            if i < s[1] and key is not None:
                want[e + LANE_UPDATE_FLAGS, p] = ref[key][1:]
    for cyc, row in enumerate(trace):
        for p in range(P):
            assert (row[p, "usat"], row[p, "psat"]) == want.get((cyc, p), (False, False)), (cyc, p)
            assert not any(row[p, k] for k in ("tree", "lo", "hi", "mv", "mv2")), (cyc, p)


# ---- Root ----------------------------------------------------------------------------------------

ROOT_OUTS = ("best", "moved", "moved2", "act_low", "act_high", "update_sat", "weight_sat", "bias_sat")


def _root_steps(name, net=None, seed=5):
    """A sample's every step of the output layer as the root finishes it, in the controller's
    schedule (``Plan.segments``; the root ignores the other segments' ops but sees them): FWD ops,
    one per neuron and lane group, the tree's sum of the group at depth DT. The state memory starts
    with random words (a previous sample's), the settling flags set (by the lanes' mv / mv2) before
    the sample's ``start``. Returns what ``_check_root_steps`` checks."""
    cfg, pl, net, x, label, ph, trace = _sample(name, seed, net)
    s, P, N, DT = cfg.sizes, pl.P, pl.N, pl.DT
    assert N == 2
    W, B = _params(net)
    dut = _Root(pl, biases=B, train=True)
    tl = _Timeline(dut.op)
    tl.put(0, dut.mv, 1)
    tl.put(0, dut.mv2, 1)
    tl.put(2, dut.start, 1)
    steps = pl.steps(learn=True)
    for c, op, u in _schedule(pl, x, neg_nudged=SIGN[name] < 0):
        tl.wait_until(c + 3)
        if op["kind"] == Kind.FWD:
            prev = _prev(cfg, trace, u, steps[u])
            js = range(op["g"] * P, min(op["g"] * P + P, s[N - 1]))
            tl.put(tl.now + DT - 1, dut.tree, sum(W[N - 1][op["i"]][j] * prev[N - 2][j] for j in js))
            if op["last"]:
                tl.snap(tl.now + DT + ROOT_STATE_WRITE, (u, op["i"]), lambda ctx: _words(ctx, dut, "st"))
        tl.emit([op])

    def setup(ctx):
        for sig, v in ((dut.label, label), (dut.learn, 1), (dut.rsp_ready, 1)):
            ctx.set(sig, v)
        mem = dut.mod.submodules["st"]
        rng = random.Random(seed)
        for addr in range(mem.depth):
            ctx.set(mem.data[addr], rng.randint(0, cfg.fixed.state_one))

    hw, snaps = tl.run(dut, [(k, getattr(dut, k)) for k in ROOT_OUTS], tail=DT + ROOT_STATE_WRITE + 3, setup=setup)
    acts = int(net.counters.act_low[N - 1][0]), int(net.counters.act_high[N - 1][0])
    return dict(cfg=cfg, pl=pl, trace=trace, acts=acts, hw=hw, snaps=snaps, steps=steps)


def _check_root_steps(r):
    cfg, pl, trace, hw, snaps = r["cfg"], r["pl"], r["trace"], r["hw"], r["snaps"]
    s, N, T1 = cfg.sizes, pl.N, cfg.T1
    for u, st in enumerate(r["steps"]):
        got = [snaps[u, i][pl.root_state_addr(st["wslot"], N, i)] for i in range(s[N])]
        assert got == trace[u][N - 1], (u, st)
    free = trace[T1 - 1][N - 1]
    zeros = [0] * s[N]
    before = trace[T1 - 2][N - 1] if T1 >= 2 else zeros
    before2 = trace[T1 - 3][N - 1] if T1 >= 3 else zeros
    end = hw[-1]
    assert end["best"] == max(range(s[N]), key=lambda i: (free[i], -i))
    assert (end["moved"], end["moved2"]) == (int(free != before), int(free != before2))
    assert (end["act_low"], end["act_high"]) == r["acts"]
    assert not any(end[k] for k in ("update_sat", "weight_sat", "bias_sat"))


@pytest.mark.parametrize("name", MAIN)
def test_root_steps(name):
    """The root's output layer through a sample, from the adder tree's sums: every step's states
    (finish: + bias, the nudge sigma (y - s_(t-1)) << (fw - kb) of nudged / negative steps,
    rounding, clamp; written into the step's slot) equal FixedEP's; the argmax (best) and the
    settling flags (moved, moved2) of the last free step; the clamp counters (act_low / act_high of
    layer N, over every phase)."""
    _check_root_steps(_root_steps(name))


@pytest.mark.parametrize("name", MAIN)
@pytest.mark.parametrize("seed", [6, 7, 8])
def test_root_bias_update(name, seed):
    """UBR over every root bias from random nudged and free (negative) states seeded into the
    root's state slots (the other slots random), the sample's key (stochastic rounding), gneg
    (sigma = -1): the bias memory holds FixedEP.update's b_1, before and after, and the counters
    update_sat / bias_sat the saturations of the spec's reference (checked against FixedEP's)."""
    cfg = CONFIGS[name]
    pl, net = Plan(cfg), _net(cfg, seed, ends=0.25)
    s, N, one, bb = cfg.sizes, cfg.n_layers, cfg.fixed.state_one, cfg.fixed.bias_bits
    rng = random.Random(seed + 100 * list(CONFIGS).index(name))
    x = _pixels(cfg, rng)
    a, c = _phase_states(cfg, rng)
    _, B0 = _params(net)
    ref = _golden_update(name, cfg, net, x, a, c)
    _, B1 = _params(net)
    dut = _Root(pl, biases=B0, train=True)
    sa, sc = pl.update_slots

    def setup(ctx):
        for sig, v in ((dut.key, fp.sample_key(cfg.seed, SAMPLE)), (dut.rsp_ready, 1),
                       (dut.gneg, int(cfg.nudging != "symmetric" and SIGN[name] < 0))):
            ctx.set(sig, v)
        mem = dut.mod.submodules["st"]
        for addr in range(mem.depth):
            ctx.set(mem.data[addr], rng.randint(0, one))
        for k in pl.root_layers:
            for i in range(s[k]):
                ctx.set(mem.data[pl.root_state_addr(sa, k, i)], a[k - 1][i])
                ctx.set(mem.data[pl.root_state_addr(sc, k, i)], c[k - 1][i])

    def biases(ctx):
        words = _words(ctx, dut, "bias")
        return [[_signed(words[pl.root_state_offsets[k] + i], bb) for i in range(s[k])] for k in pl.root_layers]

    tl = _Timeline(dut.op)
    tl.snap(0, "before", biases)
    tl.emit(_ubr_ops(pl))
    tl.snap(tl.now - 1 + ROOT_BIAS_WRITE, "after", biases)
    hw, snaps = tl.run(dut, [(k, getattr(dut, k)) for k in ROOT_OUTS], tail=ROOT_BIAS_WRITE + 3, setup=setup)
    assert snaps["before"] == B0[1:N] and snaps["after"] == B1[1:N]
    sat = [v for k, v in ref.items() if k[0] == "b" and k[1] >= 1]
    end = hw[-1]
    assert (end["update_sat"], end["weight_sat"], end["bias_sat"]) == (sum(v[1] for v in sat), 0,
                                                                       sum(v[2] for v in sat))
    assert not any(row[k] for row in hw for k in ("act_low", "act_high", "moved", "moved2"))


@pytest.mark.parametrize("name", MAIN)
def test_root_finish_edges(name):
    """``test_root_steps`` with no weight, b_1 around 0 and 1.0 (pre = -1, 0, one, one + 1, ...:
    the clamps' edges), and with every parameter 0 (all free states 0: the settling flags must
    compare with zeros, not with the previous sample's states, in the first steps)."""
    cfg = CONFIGS[name]
    f, s = cfg.fixed, cfg.sizes
    ob = 1 << f.bias_frac
    W = [torch.zeros(1, s[n + 1], s[n], dtype=torch.int64) for n in range(cfg.n_layers)]
    B = [torch.zeros(1, s[n + 1], dtype=torch.int64) for n in range(cfg.n_layers)]
    r = _root_steps(name, FixedEP(cfg, weights=W, biases=B))
    assert not any(r["trace"][0][-1])
    _check_root_steps(r)
    B[-1] = torch.tensor([([-1, ob + 1, ob, 0, 1, ob - 1, f.bias_max] * 2)[:s[-1]]])
    r = _root_steps(name, FixedEP(cfg, weights=W, biases=B))
    assert {0, f.state_one} <= set(r["trace"][0][-1])
    _check_root_steps(r)


def test_root_settling_one_group():
    """T1 = 2 with one lane group: the free phase's output layer settles at once (no weight, b_1 =
    100 LSBs: s_1 == s_2 != 0), so moved must stay 0 (moved2 is 1: s_2 != the zero state)."""
    cfg = CONFIGS["wide2"]
    s = cfg.sizes
    W = [torch.zeros(1, s[n + 1], s[n], dtype=torch.int64) for n in range(cfg.n_layers)]
    B = [torch.zeros(1, s[1], dtype=torch.int64), torch.full((1, s[2]), 100, dtype=torch.int64)]
    r = _root_steps("wide2", FixedEP(cfg, weights=W, biases=B))
    assert r["trace"][0][-1] == r["trace"][1][-1] == [100] * s[2]
    _check_root_steps(r)


@pytest.mark.parametrize("seed", [1, 2])
def test_stream_slice_passes_everything_in_order(seed):
    """Random valid on the input and random ready on the output: every transfer arrives once, in
    order."""
    from eqfpga.hdl.stream_slice import StreamSlice
    dut = StreamSlice(unsigned(8))
    rng = random.Random(seed)
    sent, got = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def tb(ctx):
        nxt = 0
        for _ in range(600):
            valid = rng.random() < 0.7
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, nxt)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                sent.append(nxt)
                nxt = (nxt + 1) % 256
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()
    sim.add_testbench(tb)
    sim.run()
    assert len(sent) > 300 and got == sent
