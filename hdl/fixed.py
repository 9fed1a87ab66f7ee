"""Fixed-point helpers on Amaranth values, named after RFC 41 (``UQ`` / ``SQ`` formats).

The formats themselves are :class:`eqfpga.golden.fixedpoint.UQ` / ``SQ``; this module turns them
into Amaranth shapes and builds the three operations the spec (docs/fixed-point.md) uses, each with
its rounding and overflow rule stated: ``shift_round`` (multiply by 2**-sh, round by an explicit
offset), ``round_offset`` (truncate / nearest / stochastic offsets) and ``saturate`` (clamp, with a
flag for the saturation counters). Nothing here wraps silently: callers size their signals from the
format, or rely on the accumulator bound checked by ``EPConfig.check_fixed``.
"""
from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, signed, unsigned

from eqfpga.golden.fixedpoint import SQ, UQ

__all__ = ["UQ", "SQ", "shape_of", "round_offset", "shift_round", "saturate", "clamp"]

ROUNDINGS = ("truncate", "nearest", "stochastic")


def shape_of(fmt):
    """The Amaranth shape holding a format's integer LSBs: ``unsigned`` for UQ, ``signed`` for SQ."""
    if isinstance(fmt, UQ):
        return unsigned(fmt.width)
    if isinstance(fmt, SQ):
        return signed(fmt.width)
    raise TypeError(f"format must be a UQ or SQ, not {fmt!r}")


def round_offset(sh: int, mode: str, rand=None):
    """What ``shift_round`` adds before shifting right by ``sh`` (spec: "Rounding R").

    truncate: 0 (floor); nearest: 2**(sh-1) (round half up); stochastic: the low ``sh`` bits of
    ``rand`` (unbiased). For ``sh <= 0`` the shift is exact and every mode adds 0.
    """
    if not isinstance(sh, int):
        raise TypeError(f"shift must be an integer, not {sh!r}")
    if mode not in ROUNDINGS:
        raise ValueError(f"rounding mode must be one of {ROUNDINGS}, not {mode!r}")
    if sh <= 0 or mode == "truncate":
        return Const(0, 1)
    if mode == "nearest":
        return Const(1 << (sh - 1), sh)
    if rand is None:
        raise ValueError("stochastic rounding needs random bits (rand)")
    rand = Value.cast(rand)
    if len(rand) < sh:
        raise ValueError(f"stochastic rounding by {sh} bits needs at least {sh} random bits, "
                         f"not {len(rand)}")
    return rand[:sh]


def shift_round(v, sh: int, offset=None):
    """``((v << max(-sh, 0)) + offset) >> max(sh, 0)``: exact left shift, or floor after an offset.

    The result is wide enough for every input (no overflow); ``>>`` of a signed value is
    arithmetic (floor), as in the golden model.
    """
    if not isinstance(sh, int):
        raise TypeError(f"shift must be an integer, not {sh!r}")
    v = Value.cast(v)
    if sh <= 0:
        return v << -sh
    off = Const(0, 1) if offset is None else Value.cast(offset)
    if off.shape().signed:
        raise ValueError(f"rounding offset must be unsigned, not {off.shape()!r}")
    # widen so that the offset addition cannot wrap, then shift (arithmetic for signed v)
    return (v + off) >> sh


def saturate(v, lo: int, hi: int):
    """Clamp ``v`` to [lo, hi]; returns ``(value, flag)`` with flag = 1 when it clamped."""
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
        raise ValueError(f"saturation bounds must be integers with lo <= hi, not ({lo!r}, {hi!r})")
    v = Value.cast(v)
    below, above = v < lo, v > hi
    out = Mux(below, lo, Mux(above, hi, v))
    return out, below | above


def clamp(v, lo: int, hi: int):
    """``saturate`` without the flag."""
    return saturate(v, lo, hi)[0]
