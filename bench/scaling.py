"""Section 4, scaling: cycles, memory and multipliers vs hidden size and P (exact, from the plan);
LUTs and Fmax from the synthesised points (``synthesis``), a fitted estimate and its error."""
from __future__ import annotations

import numpy as np

from eqfpga.boards.devices import device
from eqfpga.golden.config import load_config
from eqfpga.hdl.generate import memory_bits, multipliers
from eqfpga.hdl.resources import estimate

from .cycles import cycles_by_phase

HIDDEN_SWEEP = (32, 64, 128, 256, 512)
P_SWEEP = (4, 8, 16, 32, 64)
DEVICE = "LFE5U-85F"


def scaled(base, hidden=None, P=None):
    """``base`` with every hidden layer of size ``hidden`` and/or parallelism ``P``; the accumulator
    widened if the wider net needs it (the fixed model refuses it otherwise)."""
    s = list(base.sizes)
    if hidden is not None:
        s = [s[0]] + [hidden] * (len(s) - 2) + [s[-1]]
    c = base.replace(sizes=tuple(s), parallelism=P or base.parallelism,
                     name=f"{base.name}-h{s[1]}-p{P or base.parallelism}")
    need = c.acc_bits_needed()
    if c.fixed.acc_bits < need:
        c = c.replace(fixed={"acc_bits": need})
    return c


def device_estimate(cfg, device_name: str = DEVICE) -> dict:
    """MULT18X18D and weight-memory DP16KD of ``cfg`` on an ECP5 part, from the one resource estimate
    (``hdl.resources``), and whether both fit (a sweep point may not fit: it still gets figures)."""
    est, dev = estimate(cfg, "ecp5"), device(device_name)
    return {"mult18x18d": est.dsp_blocks, "weight_dp16kd_min": est.weight_blocks,
            "fits": est.weight_blocks <= dev.block_rams and est.dsp_blocks <= dev.dsps}


def plan_point(cfg, nnz_values, nnz_freq, device=DEVICE) -> dict:
    """Exact figures of one config from the plan: cycles, memory bits, multipliers, block RAM bound."""
    cyc = cycles_by_phase(cfg, nnz_values, nnz_freq)
    mb = memory_bits(cfg)
    est = device_estimate(cfg, device)
    return {"sizes": list(cfg.sizes), "P": cfg.parallelism, "cycles": cyc["schedule"]["total"],
            "ideal": cyc["ideal"]["total_ceil"], "efficiency": cyc["efficiency"], "memory_bits": mb["total"],
            "weights_and_biases_bits": mb["weights_and_biases_needed"],
            "multipliers": multipliers(cfg, True)["total"], "mult18x18d_estimate": est["mult18x18d"],
            "weight_dp16kd_min": est["weight_dp16kd_min"], "fits_" + device: est["fits"]}


def synth_configs(points) -> list:
    """The configs of ``RunSpec.synth_points``: (base preset, hidden, P) -> bench-<base>-h<hidden>-p<P>."""
    return [scaled(load_config(base), hidden=h, P=P).replace(name=f"bench-{base}-h{h}-p{P}")
            for base, h, P in points]


def fit_luts(points: list) -> dict:
    """LUT4 ~ a + b P (least squares) over the synthesised points; its error: leave-one-out
    relative errors (each point predicted by the fit of the others) and the in-sample residuals."""
    pts = [(p["P"], p["LUT4"]) for p in points if p.get("LUT4")]
    if len(pts) < 2:
        return {"model": "LUT4 = a + b P", "a": None, "b": None, "loo_rel_errors": [], "points": len(pts)}
    P = np.array([p for p, _ in pts], float)
    L = np.array([v for _, v in pts], float)

    def fit(Pi, Li):
        A = np.stack([np.ones_like(Pi), Pi], 1)
        return np.linalg.lstsq(A, Li, rcond=None)[0]
    a, b = fit(P, L)
    loo = []
    if len(pts) >= 3:
        for i in range(len(pts)):
            m = np.arange(len(pts)) != i
            if len(set(P[m])) < 2:
                continue
            ai, bi = fit(P[m], L[m])
            loo.append(float((ai + bi * P[i] - L[i]) / L[i]))
    fm = [p["fmax_mhz"] for p in points if p.get("fmax_mhz")]
    fmed = float(np.median(fm)) if fm else None
    return {"model": "LUT4 = a + b P", "a": float(a), "b": float(b), "points": len(pts),
            "residual_rel": [float((a + b * p - v) / v) for p, v in pts],
            "loo_rel_errors": loo, "loo_max_abs": max((abs(e) for e in loo), default=None),
            "fmax_model": "Fmax = median of the synthesised points",
            "fmax_mhz": fmed, "fmax_rel_spread": (max(abs(x - fmed) for x in fm) / fmed) if fm else None}


def bench_scaling(cfg, nnz_values, nnz_freq, *, hidden=HIDDEN_SWEEP, Ps=P_SWEEP, synth=None, check=None,
                  log=print) -> dict:
    """Plan figures vs hidden size (P fixed) and vs P (hidden fixed); ``synth``: the synthesised
    points (``synthesis.synth_point`` results) for the LUT/Fmax fit, or None; ``check``: a synthesis
    of the base config (``synth_point`` or ``reports.core_report`` result), compared with the estimate."""
    cfg = load_config(cfg)
    res = {"base": cfg.name, "nnz_mean": float(np.dot(nnz_values, nnz_freq) / np.sum(nnz_freq)),
           "vs_hidden": [plan_point(scaled(cfg, hidden=h), nnz_values, nnz_freq) for h in hidden],
           "vs_P": [plan_point(scaled(cfg, P=P), nnz_values, nnz_freq) for P in Ps]}
    res["synth_points"] = list(synth or [])
    res["fit"] = fit = fit_luts(res["synth_points"])
    if fit.get("a") is not None:
        for row in res["vs_hidden"] + res["vs_P"]:
            row["LUT4_estimate"] = fit["a"] + fit["b"] * row["P"]
            row["fmax_estimate_mhz"] = fit["fmax_mhz"]
        if check and check.get("fmax_mhz"):
            lut = check.get("LUT4") if "LUT4" in check else (check.get("resources") or {}).get("LUT4")
            est = fit["a"] + fit["b"] * check["P"]
            res["check"] = {"sizes": check["sizes"], "P": check["P"], "source": check.get("report") or check.get("path"),
                            "made": check.get("made") or check.get("date"), "fresh": check.get("fresh", True),
                            "LUT4": lut, "LUT4_estimate": est, "fmax_mhz": check["fmax_mhz"],
                            "fmax_estimate_mhz": fit["fmax_mhz"],
                            "LUT4_rel_error": (est - lut) / lut if lut else None,
                            "fmax_rel_error": (fit["fmax_mhz"] - check["fmax_mhz"]) / check["fmax_mhz"]}
    return res
