"""Precision study: test error against weight width and update rounding, all nets side by side.

Every (width, rounding) pair is an independent fixed-point net trained one sample at a time on the
same sample order; FixedEP runs them as one batched tensor computation (a leading net axis), each
with its own per-sample updates. Widths keep the integer bits of the base config's weights (the
fraction shrinks with the width); biases use the weights' format.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from .config import EPConfig
from .data import MNIST, load_mnist
from .fixed_model import FixedEP
from .train import epoch_order

ROUNDINGS = ("truncate", "nearest", "stochastic")


def study_formats(cfg: EPConfig, widths, roundings=ROUNDINGS):
    int_bits = cfg.fixed.weight_bits - 1 - cfg.fixed.weight_frac
    fmts = []
    for w in widths:
        frac = w - 1 - int_bits
        if frac < cfg.beta_shift:
            raise ValueError(f"weight width {w} leaves {frac} fraction bits, fewer than beta's shift "
                             f"{cfg.beta_shift}; start the study at a larger width")
        for r in roundings:
            fmts.append(dataclasses.replace(cfg.fixed, weight_bits=w, weight_frac=frac, bias_bits=w,
                                            bias_frac=frac, update_bits=min(cfg.fixed.update_bits, w),
                                            update_rounding=r))
    return fmts


def precision_study(cfg: EPConfig, widths=range(8, 17), roundings=ROUNDINGS, epochs: int = 1,
                    limit: int | None = None, test_limit: int | None = None, data: MNIST | None = None,
                    out_dir="runs/study", progress: bool = True, log=print) -> dict:
    widths, roundings = list(widths), list(roundings)
    fmts = study_formats(cfg, widths, roundings)
    data = data or load_mnist()
    n = min(limit or 60000, len(data.train_labels))
    nt = min(test_limit or 10000, len(data.test_labels))
    X = torch.from_numpy(data.train_images[:n].astype("int64"))
    Y = data.train_labels[:n].astype("int64")
    Xt = torch.from_numpy(data.test_images[:nt].astype("int64"))
    Yt = torch.from_numpy(data.test_labels[:nt].astype("int64"))
    model = FixedEP(cfg, fmts)
    X, Xt = model.bytes_to_lsbs(X), model.bytes_to_lsbs(Xt)   # MNIST bytes -> input LSBs
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = epoch_order(cfg, epoch, n)
        it = order.tolist()
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"study epoch {epoch + 1}", unit="sample", leave=False, mininterval=1.0)
        for i in it:
            model.train_sample(X[i], int(Y[i]))
    seconds = time.perf_counter() - t0
    errors = model.error_rate(Xt, Yt).tolist()
    rows = []
    for k, f in enumerate(fmts):
        c = model.counters.as_dict(k)
        rows.append({"weight_bits": f.weight_bits, "weight_frac": f.weight_frac, "rounding": f.update_rounding,
                     "test_error": errors[k], "weight_sat": sum(c["weight_sat"]), "update_sat": sum(c["update_sat"])})
    result = {"config": cfg.to_dict(), "epochs": epochs, "train_samples": n, "test_samples": nt,
              "nets": len(fmts), "seconds": seconds,
              "net_samples_per_s": len(fmts) * n * epochs / seconds, "rows": rows}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(result, indent=2))
    (out / "study.md").write_text(study_table(result))
    plot_study(result, out / "study.png")
    log(study_table(result))
    return result


def study_table(result: dict) -> str:
    rounds = sorted({r["rounding"] for r in result["rows"]}, key=ROUNDINGS.index)
    widths = sorted({r["weight_bits"] for r in result["rows"]})
    err = {(r["weight_bits"], r["rounding"]): r["test_error"] for r in result["rows"]}
    lines = ["| weight bits (frac) | " + " | ".join(rounds) + " |", "|---|" + "---|" * len(rounds)]
    fr = {r["weight_bits"]: r["weight_frac"] for r in result["rows"]}
    for w in widths:
        lines.append(f"| {w} ({fr[w]}) | " + " | ".join(f"{100 * err[(w, r)]:.2f}%" for r in rounds) + " |")
    return "\n".join(lines) + "\n"


def plot_study(result: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in ROUNDINGS:
        pts = sorted((x["weight_bits"], 100 * x["test_error"]) for x in result["rows"] if x["rounding"] == r)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=r)
    ax.set_xlabel("weight width (bits)")
    ax.set_ylabel("test error (%)")
    ax.set_yscale("log")
    ax.set_title(f"{result['config']['name']}: {result['train_samples']} samples x {result['epochs']} epoch(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="update rounding")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
