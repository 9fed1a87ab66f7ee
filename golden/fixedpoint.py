"""Fixed-point primitives shared by the golden model and the gateware (no torch needed).

Naming follows Amaranth RFC 41: ``UQ(i, f)`` / ``SQ(i, f)`` are unsigned / signed formats with
``i`` integer and ``f`` fractional bits (SQ counts the sign apart). Every operation states its
rounding and overflow rule; docs/fixed-point.md is the spec these functions implement.

The arithmetic functions use only Python operators (``+ >> << & ^``) plus one clip, so the same
code runs on Python ints, numpy int64 arrays and torch int64 tensors, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

MASK16 = 0xFFFF
MASK32 = 0xFFFFFFFF
HASH_ROUNDS = 8
SIGN_COUNTER = 0xFFFFFFFF   # counter reserved for the random sign of beta (layer field 15)


@dataclass(frozen=True)
class UQ:
    """Unsigned fixed point with ``i`` integer and ``f`` fractional bits."""
    i: int
    f: int

    @property
    def width(self) -> int:
        return self.i + self.f

    @property
    def min(self) -> int:
        return 0

    @property
    def max(self) -> int:
        return (1 << self.width) - 1

    def to_float(self, v):
        return v / (1 << self.f)


@dataclass(frozen=True)
class SQ:
    """Signed (two's complement) fixed point: sign bit, ``i`` integer and ``f`` fractional bits."""
    i: int
    f: int

    @property
    def width(self) -> int:
        return 1 + self.i + self.f

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1

    def to_float(self, v):
        return v / (1 << self.f)


def bytes_to_lsbs(b, input_frac: int):
    """MNIST bytes (value b / 256) -> UQ(0, input_frac) LSBs: floor(b * 2**(input_frac - 8)), a shift
    (exact when input_frac >= 8, truncating below). ``b``: int64 ints, numpy arrays or torch tensors."""
    return b << (input_frac - 8) if input_frac >= 8 else b >> (8 - input_frac)


def clip(v, lo, hi):
    """Saturate ``v`` to [lo, hi] for ints, numpy arrays or torch tensors."""
    if hasattr(v, "clamp"):
        return v.clamp(lo, hi)
    if hasattr(v, "clip"):
        return v.clip(lo, hi)
    return min(max(v, lo), hi)


def _nonneg(v):
    return v.clamp(min=0) if hasattr(v, "clamp") else (v.clip(0, None) if hasattr(v, "clip") else max(v, 0))


def round_offset(sh, mode: str, rand=None):
    """What ``shift_round`` adds before its arithmetic right shift, for each rounding mode."""
    rsh = _nonneg(sh)
    if mode == "truncate":
        return 0 * rsh
    if mode == "nearest":
        return (1 << rsh) >> 1
    if mode == "stochastic":
        if rand is None:
            raise ValueError("stochastic rounding needs random bits (rand)")
        return rand & ((1 << rsh) - 1)
    raise ValueError(f"rounding mode must be 'truncate', 'nearest' or 'stochastic', not {mode!r}")


def shift_round(v, sh, mode: str = "truncate", rand=None, offset=None):
    """Multiply integer ``v`` by 2**-sh and round: ``((v << max(-sh, 0)) + offset) >> max(sh, 0)``.

    sh <= 0 is an exact left shift. For sh > 0 the offset sets the rounding:
      truncate   offset 0:                 floor(v / 2**sh)  (towards minus infinity)
      nearest    offset 2**(sh-1):         round half up
      stochastic offset rand mod 2**sh:    rounds up with probability equal to the dropped fraction
    ``sh`` may be an int or an integer tensor (one shift per net); ``offset`` overrides ``mode``.
    """
    if offset is None:
        offset = round_offset(sh, mode, rand)
    return ((v << _nonneg(-sh)) + offset) >> _nonneg(sh)


def saturate(v, lo: int, hi: int):
    """Clamp to [lo, hi]; returns (value, mask of clamped entries) for counting saturation events."""
    out = clip(v, lo, hi)
    return out, (out != v)


# ---- random source ----------------------------------------------------------------------------
def _ror16(x, r):
    return ((x >> r) | (x << (16 - r))) & MASK16


def _rol16(x, r):
    return ((x << r) | (x >> (16 - r))) & MASK16


def arx_hash(key, ctr):
    """A counter-based hash: 32-bit key and counter in, 32 pseudo-random bits out.

    Eight rounds of the Speck32 round function (add-rotate-xor on two 16-bit halves) keyed by the
    key's halves in turn, each xored with the round number. Only adders, xors and wiring: cheap in
    LUTs, no multipliers, and the same value whatever order or parallelism visits the counters.
    """
    x = (ctr >> 16) & MASK16
    y = ctr & MASK16
    k0 = key & MASK16
    k1 = (key >> 16) & MASK16
    for r in range(HASH_ROUNDS):
        k = (k0 if r % 2 == 0 else k1) ^ r
        x = (((_ror16(x, 7) + y) & MASK16) ^ k)
        y = _rol16(y, 2) ^ x
    return (x << 16) | y


def sample_key(seed: int, sample: int) -> int:
    """Per-sample key: the hash of the sample counter under the config's seed."""
    return arx_hash(seed & MASK32, sample & MASK32)


BIAS_INDEX = 0x3FFF         # the "other index" of a bias (no neuron has this index: widths < 2^14 - 1)


def share_bits(m):
    """Bits a parameter takes from a 32-bit hash word when its update needs ``m`` random bits:
    8, 16 or 32 (so 4, 2 or 1 parameters share one hash word)."""
    return 8 if m <= 8 else (16 if m <= 16 else 32)


def owner_index(layer, i, j):
    """(u, v) of weight (i, j) of layer n: u is the neuron whose lane owns the weight (i for the
    input layer's rows, j for the other layers' columns), v the other index."""
    return (i, j) if layer == 0 else (j, i)


def random_counter(layer, u, v, share: int):
    """Counter of the hash word that parameter (u, v) of ``layer`` reads when words are cut into
    ``share``-bit pieces: layer in bits 31..28, u // (32 / share) in 27..14, v in 13..0."""
    per_word = 32 // share
    return (layer << 28) | ((u // per_word) << 14) | v


def update_random(key, layer, u, v, m: int):
    """The ``m`` random bits of parameter (u, v)'s stochastic rounding: piece u mod (32 / b) of
    H(key, random_counter(layer, u, v, b)), b = share_bits(m), cut from the low bits up."""
    if m <= 0:
        return 0 * u + 0 * v
    b = share_bits(m)
    per_word = 32 // b
    word = arx_hash(key, random_counter(layer, u, v, b))
    return (word >> (b * (u % per_word))) & ((1 << m) - 1)


# Counters in the reserved layer field 15 that derive further keys from a key (docs/fixed-point.md,
# "Random source"): below SIGN_COUNTER, so no derived key is ever the sign's word.
STEP_COUNTER = 0xF0000000       # | t: the key of C-EP's nudged step t (t < 2**27)
FEEDBACK_COUNTER = 0xF8000000   # the key of the feedback weights' (B's) updates


def step_key(key: int, t: int) -> int:
    """C-EP: the key of nudged step t's update, so that every step rounds with bits of its own."""
    return arx_hash(key, STEP_COUNTER | t)


def feedback_key(key: int) -> int:
    """VF: the key of B's updates, derived from W's: B_n[i, j] and W_n[j, i] share (layer, u, v)."""
    return arx_hash(key, FEEDBACK_COUNTER)


def beta_sign_negative(key: int) -> bool:
    """Random-sign nudging: True when this sample's beta is negative (bit 0 of hash(key, ~0))."""
    return bool(arx_hash(key, SIGN_COUNTER) & 1)
