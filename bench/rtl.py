"""The RTL in Verilator: training alone (``FastSim``) and bit-exact training beside the golden model
(``verify``), each then classifying test images on the RTL."""
from __future__ import annotations

import time

import numpy as np

from eqfpga.golden.fixed_model import FixedEP
from eqfpga.sim.fastsim import FastSim
from eqfpga.sim.verify import verify


def initial_params(cfg) -> tuple:
    """The initial weights and biases of ``cfg`` (FixedEP's, the ones verify() loads)."""
    g = FixedEP(cfg)
    return [w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases]


def rtl_curve(cfg, tx, ty, vx, vy, curve, *, root=None, log=print) -> dict:
    """Train the RTL alone (FastSim, no golden model, no checksums) and classify the test images on
    the RTL after each count of samples in ``curve``: the RTL's training curve, and its speed
    without the cost of checking."""
    W, B = initial_params(cfg)
    points = sorted({int(c) for c in curve if 0 < c <= len(ty)} | {len(ty)})
    out, train_s, train_clocks, cycles, infer_s, infer_clocks = [], 0.0, 0, [], 0.0, 0
    tb = time.perf_counter()
    with FastSim(cfg, root=root) as fs:
        build_s = time.perf_counter() - tb
        fs.write_params(W, B)
        fs.set_t(0)
        a = 0
        t_wall = 0.0
        for p in points:
            t0 = time.perf_counter()
            r = fs.run(tx[a:p], ty[a:p], learn=True, checksum=False)
            t_wall += time.perf_counter() - t0
            train_s += r["seconds"]
            train_clocks += r["clocks"]
            cycles.append(r["cycles"])
            a = p
            preds = []
            for c in range(0, len(vy), 1000):
                ri = fs.run(vx[c:c + 1000], vy[c:c + 1000], learn=False, checksum=False)
                preds.append(ri["pred"])
                infer_s += ri["seconds"]
                infer_clocks += ri["clocks"]
            err = float((np.concatenate(preds) != vy).mean()) if len(vy) else None
            out.append({"samples": p, "test_error": err})
            log(f"  RTL alone: {p} samples, test error {100 * err:.2f}% on {len(vy)} images")
    cyc = np.concatenate(cycles)
    return {"seed": cfg.seed, "train_samples": int(len(ty)), "test_images": int(len(vy)), "curve": out,
            "test_error": out[-1]["test_error"], "build_and_start_s": round(build_s, 2),
            "cycles_per_sample": float(cyc.mean()), "train_sim_s": round(train_s, 3),
            "train_wall_s": round(t_wall, 3), "samples_per_s": len(ty) / t_wall if t_wall else None,
            "sim_cycles_per_s": train_clocks / train_s if train_s else None,
            "infer_sim_cycles_per_s": infer_clocks / infer_s if infer_s else None}


def verify_seed(cfg, tx, ty, vx, vy, *, root=None, check_every=1000, log=None) -> dict:
    """verify(): bit-exact RTL training beside FixedEP, then RTL inference on (vx, vy)."""
    test = (vx, vy) if vx is not None and len(vy) else False
    r = verify(cfg, samples=len(ty), data=(tx, ty), test=test, root=root, check_every=check_every, log=log)
    t = r.get("test") or {}
    keys = ("bit_exact", "samples_compared", "full_checks", "cycles_per_sample", "sim_cycles_per_s", "rtl_s",
            "golden_s", "train_wall_s", "wall_s_per_1000", "rtl_s_per_1000", "golden_s_per_1000",
            "build_and_start_s", "wall_s", "check_every")
    out = {k: r.get(k) for k in keys}
    out.update({"seed": cfg.seed, "train_samples": len(ty), "test_images": len(vy) if vy is not None else 0,
                "test_error": t.get("rtl_error"), "golden_test_error": t.get("golden_error"),
                "prediction_mismatches": t.get("prediction_mismatches"),
                "test_cycles_per_image": t.get("cycles_per_image"), "test_sim_cycles_per_s": t.get("sim_cycles_per_s"),
                "test_wall_s": t.get("wall_s"), "first_mismatch": r.get("first_mismatch"),
                "samples_per_s": len(ty) / r["train_wall_s"] if r.get("train_wall_s") else None})
    return out
