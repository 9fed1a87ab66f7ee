"""Fixed-point primitives against exact rational arithmetic, on ints, numpy int64 and torch int64."""
from fractions import Fraction
from math import ceil, floor

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqfpga.golden.fixedpoint import (MASK32, SIGN_COUNTER, SQ, UQ, arx_hash, beta_sign_negative, clip,
                                      round_offset, sample_key, saturate, shift_round, BIAS_INDEX, owner_index,
                                      random_counter, share_bits, update_random)

FAST = settings(max_examples=150, deadline=None)
values = st.integers(-(1 << 40), 1 << 40)
shifts = st.integers(-8, 20)
u32 = st.integers(0, MASK32)


def exact(v, sh):
    return Fraction(v) / Fraction(2) ** sh


def expected(v, sh, mode, rand=0):
    q = exact(v, sh)
    if sh <= 0:
        return int(q)
    if mode == "truncate":
        return floor(q)
    if mode == "nearest":
        return floor(q + Fraction(1, 2))
    return floor(exact(v + rand % (1 << sh), sh))


def _as_np(v):
    return np.int64(v)


def _as_torch(v):
    return torch.tensor(v, dtype=torch.int64)


@FAST
@given(values, shifts, st.sampled_from(["truncate", "nearest"]))
def test_shift_round_deterministic_modes(v, sh, mode):
    want = expected(v, sh, mode)
    assert shift_round(v, sh, mode) == want
    assert int(shift_round(_as_np(v), _as_np(sh), mode)) == want
    assert int(shift_round(_as_np(v), sh, mode)) == want
    assert int(shift_round(_as_torch(v), sh, mode)) == want
    assert int(shift_round(_as_torch(v), _as_torch(sh), mode)) == want


@FAST
@given(values, shifts)
def test_nearest_is_round_half_up(v, sh):
    r = shift_round(v, sh, "nearest")
    q = exact(v, sh)
    assert abs(r - q) <= Fraction(1, 2)
    if sh > 0 and q - floor(q) == Fraction(1, 2):
        assert r == ceil(q)


@FAST
@given(values, shifts, u32)
def test_shift_round_stochastic(v, sh, rand):
    q = exact(v, sh)
    r = shift_round(v, sh, "stochastic", rand)
    assert r in (floor(q), ceil(q))
    assert r == expected(v, sh, "stochastic", rand)
    assert int(shift_round(_as_np(v), _as_np(sh), "stochastic", _as_np(rand))) == r
    assert int(shift_round(_as_torch(v), _as_torch(sh), "stochastic", _as_torch(rand))) == r
    assert int(shift_round(_as_torch(v), sh, "stochastic", rand)) == r


@settings(max_examples=60, deadline=None)
@given(st.integers(-(1 << 20), 1 << 20), st.integers(0, 10))
def test_stochastic_mean_over_all_offsets_is_exact(v, sh):
    n = 1 << sh
    rs = list(range(n))
    total = sum(shift_round(v, sh, "stochastic", r) for r in rs)
    assert Fraction(total, n) == exact(v, sh)
    # vectorised: the same over a tensor of offsets (random bits above the low sh bits are ignored)
    rand = torch.tensor(rs, dtype=torch.int64) + (torch.arange(n, dtype=torch.int64) * 7919 << 12)
    out = shift_round(torch.full((n,), v, dtype=torch.int64), sh, "stochastic", rand)
    assert Fraction(int(out.sum()), n) == exact(v, sh)


@FAST
@given(st.lists(values, min_size=1, max_size=20), shifts,
       st.sampled_from(["truncate", "nearest", "stochastic"]), st.data())
def test_arrays_match_scalars(vs, sh, mode, data):
    rands = data.draw(st.lists(u32, min_size=len(vs), max_size=len(vs)))
    want = [expected(v, sh, mode, r) for v, r in zip(vs, rands)]
    rt = torch.tensor(rands, dtype=torch.int64) if mode == "stochastic" else None
    rn = np.array(rands, dtype=np.int64) if mode == "stochastic" else None
    assert shift_round(torch.tensor(vs, dtype=torch.int64), sh, mode, rt).tolist() == want
    assert shift_round(torch.tensor(vs, dtype=torch.int64), torch.tensor(sh), mode, rt).tolist() == want
    assert shift_round(np.array(vs, dtype=np.int64), sh, mode, rn).tolist() == want


@FAST
@given(st.lists(st.tuples(values, shifts), min_size=1, max_size=10), st.sampled_from(["truncate", "nearest"]))
def test_tensor_of_shifts_broadcasts(pairs, mode):
    """One shift per net: an (M, 1) shift tensor against (M, k) values."""
    v = torch.tensor([[p[0]] * 3 for p in pairs], dtype=torch.int64)
    sh = torch.tensor([[p[1]] for p in pairs], dtype=torch.int64)
    out = shift_round(v, sh, mode)
    for row, (vv, ss) in zip(out.tolist(), pairs):
        assert row == [expected(vv, ss, mode)] * 3


def test_round_offset_and_errors():
    assert round_offset(0, "nearest") == 0
    assert round_offset(-3, "nearest") == 0
    assert round_offset(4, "nearest") == 8
    assert round_offset(4, "truncate") == 0
    assert round_offset(4, "stochastic", 0xFFFF_FFFF) == 15
    assert round_offset(0, "stochastic", 0xFFFF_FFFF) == 0
    with pytest.raises(ValueError, match="rand"):
        round_offset(3, "stochastic")
    with pytest.raises(ValueError, match="rounding mode"):
        shift_round(5, 2, "up")


def test_offset_overrides_mode():
    assert shift_round(7, 2, "truncate", offset=2) == 2
    assert shift_round(5, 2, "nearest", offset=0) == 1


@FAST
@given(values, st.integers(-1000, 1000), st.integers(0, 2000))
def test_saturate(v, lo, span):
    hi = lo + span
    want = min(max(v, lo), hi)
    out, hit = saturate(v, lo, hi)
    assert out == want and hit == (want != v)
    out, hit = saturate(np.array([v, lo], dtype=np.int64), lo, hi)
    assert out.tolist() == [want, lo] and hit.tolist() == [want != v, False]
    out, hit = saturate(torch.tensor([v, hi]), lo, hi)
    assert out.tolist() == [want, hi] and hit.tolist() == [want != v, False]
    assert clip(v, lo, hi) == want


def test_formats():
    assert (UQ(1, 8).width, UQ(1, 8).min, UQ(1, 8).max) == (9, 0, 511)
    assert (SQ(3, 12).width, SQ(3, 12).min, SQ(3, 12).max) == (16, -32768, 32767)
    assert SQ(3, 12).to_float(4096) == 1.0 and UQ(0, 8).to_float(128) == 0.5


# ---- random source ----------------------------------------------------------------------------
def _hash_ref(k, c):
    """docs/fixed-point.md, "Random source", written out independently."""
    ror = lambda v, r: ((v >> r) | (v << (16 - r))) & 0xFFFF  # noqa: E731
    rol = lambda v, r: ((v << r) | (v >> (16 - r))) & 0xFFFF  # noqa: E731
    x, y, k0, k1 = c >> 16, c & 0xFFFF, k & 0xFFFF, k >> 16
    for r in range(8):
        x = ((ror(x, 7) + y) % 65536) ^ ((k0 if r % 2 == 0 else k1) ^ r)
        y = rol(y, 2) ^ x
    return (x << 16) | y


@FAST
@given(u32, u32)
def test_arx_hash_matches_spec(k, c):
    h = arx_hash(k, c)
    assert h == _hash_ref(k, c)
    assert 0 <= h < 1 << 32


@FAST
@given(u32, st.lists(u32, min_size=1, max_size=30))
def test_arx_hash_arrays_match_ints(k, cs):
    want = [arx_hash(k, c) for c in cs]
    assert arx_hash(k, torch.tensor(cs, dtype=torch.int64)).tolist() == want
    assert arx_hash(k, np.array(cs, dtype=np.int64)).tolist() == want
    assert arx_hash(np.int64(k), np.array(cs, dtype=np.int64)).tolist() == want
    assert arx_hash(torch.tensor(k), torch.tensor(cs, dtype=torch.int64)).tolist() == want
    out = arx_hash(k, torch.tensor(cs, dtype=torch.int64))
    assert int(out.min()) >= 0 and int(out.max()) < 1 << 32


def test_arx_hash_low_bits_roughly_uniform():
    n = 1 << 14
    for key in (0, 1, 0xDEADBEEF):
        # sequential counters, the pattern the weight counters make
        h = arx_hash(key, torch.arange(n, dtype=torch.int64))
        for b in range(8):
            frac = float(((h >> b) & 1).double().mean())
            assert abs(frac - 0.5) < 0.03, (key, b, frac)
        counts = torch.bincount(h & 0xF, minlength=16).double()
        chi2 = float(((counts - n / 16) ** 2 / (n / 16)).sum())
        assert chi2 < 60, chi2          # 15 degrees of freedom: p ~ 1e-7 at 60
    # weight counters of a layer (i, j grid) as used for stochastic rounding
    i = torch.arange(64).view(-1, 1)
    j = torch.arange(64).view(1, -1)
    h = arx_hash(12345, random_counter(1, i, j, 32)).flatten()
    counts = torch.bincount(h & 0xF, minlength=16).double()
    assert float(((counts - 256) ** 2 / 256).sum()) < 60
    assert len(set(h.tolist())) > 4000          # no gross collisions


def test_sample_key_and_sign():
    assert sample_key(7, 3) == arx_hash(7, 3)
    assert sample_key(7, 3 + (1 << 32)) == sample_key(7, 3)        # counter mod 2^32
    assert beta_sign_negative(123) == bool(arx_hash(123, SIGN_COUNTER) & 1)
    signs = [beta_sign_negative(sample_key(0, t)) for t in range(400)]
    assert 120 < sum(signs) < 280


def test_random_counter_layout():
    assert random_counter(0, 0, 0, 32) == 0
    assert random_counter(3, 5, 7, 32) == (3 << 28) | (5 << 14) | 7
    assert random_counter(3, 5, 7, 8) == (3 << 28) | (1 << 14) | 7       # 4 neurons a word
    assert random_counter(3, 5, 7, 16) == (3 << 28) | (2 << 14) | 7      # 2 neurons a word
    assert random_counter(14, (1 << 14) - 2, BIAS_INDEX, 32) < SIGN_COUNTER
    i = torch.arange(3).view(-1, 1)
    j = torch.arange(4).view(1, -1)
    assert random_counter(2, i, j, 8).tolist() == [[random_counter(2, a, b, 8) for b in range(4)] for a in range(3)]
    assert owner_index(0, 3, 9) == (3, 9) and owner_index(1, 3, 9) == (9, 3)


@pytest.mark.parametrize("m, b", [(1, 8), (8, 8), (9, 16), (16, 16), (17, 32), (32, 32)])
def test_update_random_pieces(m, b):
    """S = 32 / b aligned neurons share one hash word, each taking its own b-bit piece."""
    assert share_bits(m) == b
    S = 32 // b
    key, layer, v = 0x1234ABCD, 2, 77
    for u0 in (0, 4, 40, 16376):
        word = arx_hash(key, (layer << 28) | ((u0 // S) << 14) | v)
        for r in range(S):
            assert update_random(key, layer, u0 + r, v, m) == (word >> (b * r)) & ((1 << m) - 1)
    assert update_random(key, layer, 5, v, 0) == 0
    u = torch.arange(64)
    assert update_random(key, layer, u, v, m).tolist() == [update_random(key, layer, a, v, m) for a in range(64)]
    # the pieces of one word are not all equal (different neurons get different bits)
    if S > 1:
        assert len({update_random(key, layer, a, v, m) for a in range(S)}) > 1


def test_update_random_roughly_uniform():
    key = 0xC0FFEE
    u = torch.arange(256).view(-1, 1)
    v = torch.arange(64).view(1, -1)
    r = update_random(key, 0, u, v, 6).flatten()
    counts = torch.bincount(r, minlength=64).double()
    n = r.numel()
    chi2 = float(((counts - n / 64) ** 2 / (n / 64)).sum())
    assert chi2 < 130, chi2         # 63 degrees of freedom: p ~ 1e-6 at 130
