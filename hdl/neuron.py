"""One lane of the neuron: pre-activation terms, state rounding and the saturating hard sigmoid.

docs/fixed-point.md, "One step": s = clamp((acc + r_s) >> fw, 0, 2**fs) with acc the exact sum of
forward, bias (aligned by << (fw + fs - fb)), feedback and, for the output layer in a nudged step,
sigma * ((y - s) << (fw - kb)). Returns the new state and the two clamp flags (act_low/act_high).

A combinational reference, tested against the golden model (tests/test_hdl_blocks.py): ``EPCore``
does not instantiate it, it computes the same in its pipeline stages (hdl/core.py, "Neuron finish").
"""
from __future__ import annotations

from amaranth.hdl import Mux

from .fixed import shift_round


def neuron_lane(*, acc, bias, drive, nudge_on, nudge_neg, target, old_state, fixed, beta_shift: int):
    """(new state, clamped low, clamped high) for one neuron; ``drive`` is d0 or 0."""
    fw, fs, fb = fixed.weight_frac, fixed.state_frac, fixed.bias_frac
    one = 1 << fs
    nudge = (target - old_state) << (fw - beta_shift)
    nudge = Mux(nudge_on, Mux(nudge_neg, -nudge, nudge), 0)
    total = acc + drive + (bias << (fw + fs - fb)) + nudge
    r_s = (1 << fw) >> 1 if fixed.state_rounding == "nearest" else 0
    pre = shift_round(total, fw, r_s if r_s else None)
    low, high = pre < 0, pre > one
    state = Mux(low, 0, Mux(high, one, pre))
    return state[:fs + 1], low, high
