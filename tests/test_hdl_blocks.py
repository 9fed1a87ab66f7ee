"""Each gateware block against the golden fixed-point ops (amaranth.sim), random + edge vectors.

Blocks: the ARX hash, shift_round in every rounding mode and both shift directions, saturate at
both ends, the update lane (round, saturate update, add, saturate value) and the neuron lane
(bias, drive, nudge, state rounding, hard sigmoid).

The neuron and update lanes tested here (hdl/neuron.py, hdl/update.py) are not the ones the core
(hdl/core.py) instantiates: the core's own arithmetic is proved by test_hdl_core and the harness
tests. The fast-core issue, which replaces the core, makes it use these blocks.
"""
import random

import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from eqfpga.golden import fixedpoint as fp
from eqfpga.golden.config import FixedConfig
from eqfpga.hdl.arx_hash import ArxHash, arx_hash_pipeline, arx_round
from eqfpga.hdl.fixed import SQ, UQ, round_offset, saturate, shape_of, shift_round
from eqfpga.hdl.neuron import neuron_lane
from eqfpga.hdl.update import update_lane


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
    pairs += [(rng.getrandbits(32), fp.weight_counter(rng.randrange(15), rng.randrange(1 << 14), rng.randrange(1 << 14)))
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


@pytest.mark.parametrize("mode", ["truncate", "nearest", "stochastic"])
@pytest.mark.parametrize("sh", [-2, 0, 4, 9])
def test_update_lane_matches_golden(mode, sh):
    wb, ub = 8, 5
    wmin, wmax, umin, umax = -(1 << (wb - 1)), (1 << (wb - 1)) - 1, -(1 << (ub - 1)), (1 << (ub - 1)) - 1
    d, old, rnd = Signal(signed(20)), Signal(signed(wb)), Signal(32)
    new, us, ps = Signal(signed(wb + 2)), Signal(), Signal()
    m = Module()
    v, a, b = update_lane(diff=d, sh=sh, mode=mode, rand=rnd, old=old, update_range=(umin, umax),
                          value_range=(wmin, wmax))
    m.d.comb += [new.eq(v), us.eq(a), ps.eq(b)]
    rng = random.Random(sh + 100)
    vecs = [V((d, rng.randrange(-(1 << 19), 1 << 19) >> rng.randrange(20)), (old, rng.randrange(wmin, wmax + 1)),
              (rnd, rng.getrandbits(32))) for _ in range(200)]
    vecs += [V((d, x), (old, o), (rnd, 0)) for x in (0, 1, -1, (1 << 19) - 1, -(1 << 19)) for o in (wmin, 0, wmax)]
    def check(ctx, vec):
        dw = fp.shift_round(vec[d], sh, mode, vec[rnd])
        dwc, usat = fp.saturate(dw, umin, umax)
        want, psat = fp.saturate(vec[old] + dwc, wmin, wmax)
        assert (ctx.get(new), ctx.get(us), ctx.get(ps)) == (want, int(usat), int(psat)), vec
    _run(m, vecs, check)


@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_neuron_lane_matches_golden(rounding):
    f = FixedConfig(weight_bits=12, weight_frac=8, bias_bits=10, bias_frac=6, acc_bits=28, state_rounding=rounding)
    kb, one = 1, 1 << f.state_frac
    acc, bias, drive = Signal(signed(28)), Signal(signed(10)), Signal(signed(28))
    on, neg, tgt, old = Signal(), Signal(), Signal(9), Signal(9)
    st, lo, hi = Signal(9), Signal(), Signal()
    m = Module()
    a, b, c = neuron_lane(acc=acc, bias=bias, drive=drive, nudge_on=on, nudge_neg=neg, target=tgt,
                          old_state=old, fixed=f, beta_shift=kb)
    m.d.comb += [st.eq(a), lo.eq(b), hi.eq(c)]
    rng = random.Random(5)
    vecs = []
    for _ in range(300):
        vecs.append(V((acc, rng.randrange(-(1 << 18), 1 << 18)), (bias, rng.randrange(-512, 512)),
                      (drive, rng.randrange(-(1 << 17), 1 << 17)), (on, rng.randrange(2)), (neg, rng.randrange(2)),
                      (tgt, rng.choice([0, one])), (old, rng.randrange(one + 1))))
    vecs += [V((acc, x), (bias, 0), (drive, 0), (on, 0), (neg, 0), (tgt, 0), (old, 0))
             for x in (-(1 << 27), -1, 0, 127, 128, one << 8, (one << 8) + 200, (1 << 27) - 1)]
    off = (1 << f.weight_frac) >> 1 if rounding == "nearest" else 0
    def check(ctx, vec):
        total = vec[acc] + vec[drive] + (vec[bias] << (f.weight_frac + f.state_frac - f.bias_frac))
        if vec[on]:
            nudge = (vec[tgt] - vec[old]) << (f.weight_frac - kb)
            total += -nudge if vec[neg] else nudge
        pre = fp.shift_round(total, f.weight_frac, offset=off)
        want = min(max(pre, 0), one)
        assert (ctx.get(st), ctx.get(lo), ctx.get(hi)) == (want, int(pre < 0), int(pre > one)), vec
    _run(m, vecs, check)
