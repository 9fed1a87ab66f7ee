"""First differences between the RTL's values and the golden model's, compared with equality.

One implementation for every checker: the cocotb test (nested lists read through the access port)
and the long-run verification (numpy arrays from the harness). numpy only, no torch: the cocotb
test imports this inside the simulator's embedded Python.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np


@dataclass(frozen=True)
class ParamDiff:
    """The first weight or bias that differs (row-major within a layer, layer by layer, W_n before
    b_n); ``count`` is how many differ in that tensor."""
    what: str           # "weight" or "bias"
    layer: int
    index: list
    rtl: int
    golden: int
    name: str           # "W1[2][5]", "b0[6]"
    count: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.name}: hardware {self.rtl} != golden {self.golden}"


class StateDiff(NamedTuple):
    """The first state that differs: layer k (1..N), neuron index, both values."""
    layer: int
    index: int
    rtl: int
    golden: int


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{what}: the RTL's values have shape {a.shape}, the golden's {b.shape}")


def first_param_diff(rtl, gold) -> ParamDiff | None:
    """rtl, gold: (weights, biases), per layer W_n (out x in) and b_n (out), lists or arrays."""
    (rW, rB), (gW, gB) = rtl, gold
    if len(rW) != len(gW) or len(rB) != len(gB):
        raise ValueError(f"the RTL has {len(rW)} weight / {len(rB)} bias layers, the golden "
                         f"{len(gW)} / {len(gB)}")
    for n in range(len(gW)):
        r, g = np.asarray(rW[n], np.int64), np.asarray(gW[n], np.int64)
        _same_shape(r, g, f"W{n}")
        d = np.argwhere(r != g)
        if len(d):
            i, j = (int(v) for v in d[0])
            return ParamDiff("weight", n, [i, j], int(r[i, j]), int(g[i, j]), f"W{n}[{i}][{j}]", int(len(d)))
        r, g = np.asarray(rB[n], np.int64).reshape(-1), np.asarray(gB[n], np.int64).reshape(-1)
        _same_shape(r, g, f"b{n}")
        d = np.flatnonzero(r != g)
        if len(d):
            i = int(d[0])
            return ParamDiff("bias", n, [i], int(r[i]), int(g[i]), f"b{n}[{i}]", int(len(d)))
    return None


def first_state_diff(rtl, gold) -> StateDiff | None:
    """rtl, gold: the states s_1..s_N, one integer vector per layer."""
    if len(rtl) != len(gold):
        raise ValueError(f"the RTL has states of {len(rtl)} layers, the golden of {len(gold)}")
    for k, (r, g) in enumerate(zip(rtl, gold), start=1):
        r, g = np.asarray(r, np.int64).reshape(-1), np.asarray(g, np.int64).reshape(-1)
        _same_shape(r, g, f"s{k}")
        d = np.flatnonzero(r != g)
        if len(d):
            i = int(d[0])
            return StateDiff(k, i, int(r[i]), int(g[i]))
    return None
