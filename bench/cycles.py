"""Cycles of a training sample by phase, from the controller's schedule (``hdl.plan.Plan``), against
the ideal bound of P products a cycle (zero pixels skipped)."""
from __future__ import annotations

import numpy as np

from eqfpga.hdl.plan import Plan

from .inputs import connections


def work_per_sample(cfg, nnz: float, learn: bool = True) -> dict:
    """Products (multiply-accumulates) of one sample by phase, zero pixels skipped: the numerators of
    Plan.ideal_cycles."""
    pl, s = Plan(cfg), cfg.sizes
    steps_n = cfg.T2 * (2 if pl.symmetric else 1)
    w = {"input_drive": nnz * s[1], "free_steps": cfg.T1 * pl.macs_per_step(),
         "nudged_steps": steps_n * pl.macs_per_step() if learn else 0,
         "update": (nnz * s[1] + sum(s[n] * s[n + 1] for n in range(1, pl.N)) + sum(s[1:])) if learn else 0}
    w["total"] = sum(w.values())
    return w


def cycles_by_phase(cfg, nnz_values, nnz_freq) -> dict:
    """Schedule and ideal cycles of a training sample, per phase, averaged over images with these
    non-zero pixel counts. The steps part is split into free (T1) and nudged (T2) steps."""
    pl = Plan(cfg)
    n = float(np.sum(nnz_freq))
    sched, ideal, work = {}, {}, {}
    for v, f in zip(nnz_values, nnz_freq):
        p = pl.sample_cycles(int(v), learn=True)
        part = {k: p[k] for k in ("load", "key", "input_drive", "free_steps", "nudged_steps", "update",
                                  "drain_and_result")}
        assert part["free_steps"] + part["nudged_steps"] == p["steps"]
        wk = work_per_sample(cfg, int(v))
        for k, x in part.items():
            sched[k] = sched.get(k, 0.0) + x * f / n
        for k in ("input_drive", "free_steps", "nudged_steps", "update"):
            ideal[k] = ideal.get(k, 0.0) + wk[k] / pl.P * f / n
            work[k] = work.get(k, 0.0) + wk[k] * f / n
        sched["total"] = sched.get("total", 0.0) + p["total"] * f / n
        ideal["total_ceil"] = ideal.get("total_ceil", 0.0) + pl.ideal_cycles(int(v), learn=True) * f / n
    ideal["total"] = sum(v for k, v in ideal.items() if k != "total_ceil")
    work["total"] = sum(work.values())
    for k in ("load", "key", "drain_and_result"):
        ideal[k] = 0.0
    return {"images": int(n), "mean_nnz": float(np.dot(nnz_values, nnz_freq) / n), "schedule": sched,
            "ideal": ideal, "macs": work, "efficiency": ideal["total_ceil"] / sched["total"],
            "P": pl.P, "connections": connections(cfg)}
