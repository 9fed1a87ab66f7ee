"""One lane of the synapse update: round the exact difference D, saturate, add, saturate.

docs/fixed-point.md, "Update": dW = sat_ub(((D << max(-sh, 0)) + R) >> max(sh, 0)) and
W = sat_wb(W + dW). Returns the new value and the two saturation flags that feed ``update_sat``
and ``weight_sat`` / ``bias_sat``.

A combinational reference, tested against the golden model (tests/test_hdl_blocks.py): ``EPCore``
does not instantiate it, it computes the same in its pipeline stages (hdl/core.py, "update unit").
"""
from __future__ import annotations

from .fixed import round_offset, saturate, shift_round


def update_lane(*, diff, sh: int, mode: str, rand, old, update_range: tuple, value_range: tuple):
    """(new value, update saturated, value saturated) for one weight or bias."""
    delta = shift_round(diff, sh, round_offset(sh, mode, rand))
    delta, usat = saturate(delta, *update_range)
    new, psat = saturate(old + delta, *value_range)
    return new, usat, psat
