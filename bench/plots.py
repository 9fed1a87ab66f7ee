"""The plots of the page: training curves, cycles by phase, scaling (the precision study draws its own)."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

CURVES, CYCLES, SCALING = "bench-curves.png", "bench-cycles.png", "bench-scaling.png"
PHASES = ["load", "key", "input_drive", "free_steps", "nudged_steps", "update", "drain_and_result"]


def write_plots(res: dict, out_dir) -> list:
    """The plots of the sections present in ``res``, written into ``out_dir``; their file names."""
    matplotlib.use("Agg")       # files only, no display
    out, cmd, files = Path(out_dir), res["meta"]["command"], []
    if res.get("accuracy"):
        files.append(plot_curves(res["accuracy"], cmd, out / CURVES))
    if res.get("speed"):
        files.append(plot_cycles(res["speed"], cmd, out / CYCLES))
    if res.get("scaling"):
        files.append(plot_scaling(res["scaling"], cmd, out / SCALING))
    return files


def plot_curves(acc: dict, cmd: str, path: Path) -> str:
    """Test error vs training samples: float and fixed golden (mean and range of the seeds), RTL."""
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
    return _save(fig, path)


def plot_cycles(sp: dict, cmd: str, path: Path) -> str:
    """Cycles per training sample by phase: the schedule against the ideal bound, the RTL counter."""
    c = sp["cycles"]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    for row, (label, part) in enumerate((("schedule", c["schedule"]), ("ideal bound", c["ideal"]))):
        left = 0.0
        for i, k in enumerate(PHASES):
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
    return _save(fig, path)


def plot_scaling(sc: dict, cmd: str, path: Path) -> str:
    """Cycles and memory vs hidden size, cycles and multipliers vs P, LUT4 and Fmax of the synthesised points."""
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
    return _save(fig, path)


def _log_axes(ax, xticks=None, y=True):
    """Log axes with plain-number labels (matplotlib's default minor labels overlap)."""
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


def _save(fig, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


