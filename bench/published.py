"""The published figures the report compares against, and the boards it always reports.

They live in ``published.json`` (package data): quoted figures are data, not code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Published:
    ep_accuracy: tuple        # EP test errors of the literature (dicts: paper, net, test_error_pct, notes)
    on_chip_learners: tuple   # on-chip training systems (system, net, s_per_sample, connections, energy, ...)
    rbm_trainers: tuple       # RBM contrastive-divergence FPGA trainers (system, net, cups, clock_mhz)
    boards: tuple             # board names reported even when no build report of them is found


@lru_cache(maxsize=1)
def published() -> Published:
    d = json.loads((resources.files("eqfpga.bench") / "published.json").read_text())
    return Published(ep_accuracy=tuple(d["ep_accuracy"]), on_chip_learners=tuple(d["on_chip_learners"]),
                     rbm_trainers=tuple(d["rbm_trainers"]), boards=tuple(d["boards"]))
