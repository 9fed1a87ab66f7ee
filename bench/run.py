"""``run_bench``: one run of every section (``eqfpga bench [--quick]``), written as benchmarks.md,
benchmarks.json and the plots."""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from eqfpga.golden.config import load_config
from eqfpga.sim.paths import build_dir, build_root

from .accuracy import bench_accuracy
from .inputs import as_mnist, nnz_histogram
from .machine import git_state, load_average, machine_info
from .markdown import write_markdown
from .plots import write_plots
from .precision import PLOT as PRECISION_PLOT
from .precision import bench_precision
from .reports import board_figures, core_report, find_board_reports
from .scaling import bench_scaling, synth_configs
from .simulation import bench_sim
from .spec import RunSpec
from .speed import bench_speed, torch_speed
from .synthesis import BackgroundSynthesis

SCHEMA = 1


def run_bench(spec: RunSpec | None = None, *, out_dir="docs", data=None, boards_dir=None, log=print,
              sim_root=None, synth_root=None) -> dict:
    """Measure the sections of ``spec`` (default ``RunSpec.full()``) in one run; write
    benchmarks.md/.json and the plots into ``out_dir``; return the results.

    ``data``: an MNIST or a folder of its IDX files (None: fetched). ``boards_dir``: the committed
    board build reports (default ``<out_dir>/boards``, i.e. docs/boards for the default docs);
    board builds are also looked for under the build root. Verilator builds go to ``sim_root``
    (default build_dir("fastsim"), shared with ``eqfpga verify``), syntheses to ``synth_root`` (build_dir("bench", "synth")).
    A section that fails is named in the page and the JSON; the others stand."""
    spec = spec or RunSpec.full()
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    t_start = time.perf_counter()
    cfg = load_config(spec.config)
    out = Path(out_dir)
    boards_dir = Path(boards_dir) if boards_dir is not None else out / "boards"
    sim_root = Path(sim_root) if sim_root is not None else build_dir("fastsim")   # shared with `eqfpga verify`
    synth_root = Path(synth_root) if synth_root is not None else build_dir("bench", "synth")
    core_roots = [synth_root, build_dir("core")]     # the bench's points, then `eqfpga build --core-only`
    meta = {"schema": SCHEMA, "command": spec.command, "quick": spec.is_quick,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_info(), "git": git_state(), "load_before": load_average(), "mode": spec.to_dict(),
            "config": cfg.to_dict(), "section_times_s": {}, "load_after_section": {}}
    res = {"meta": meta, "failed": {}}
    log(f"{spec.command}: {cfg.name}, load {meta['load_before']}")
    data = as_mnist(data)

    def attempt(name, fn):
        """Run one section; a failure is recorded (and reported in the page) instead of ending the run."""
        t0 = time.perf_counter()
        log(name)
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001 - named in the page and the JSON, with its traceback
            res["failed"][name] = f"{e!r}\n" + "".join(traceback.format_exc().splitlines(True)[-6:])
            log(f"[{name}] FAILED: {e!r}")
        meta["section_times_s"][name] = round(time.perf_counter() - t0, 1)
        meta["load_after_section"][name] = load_average()
        log(f"[{name}] {meta['section_times_s'][name]} s, load {load_average()}")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # the syntheses run in their own process while the golden models train; the RTL and the
        # timed sections wait for them
        synthesis = None
        if "scaling" in spec.sections and spec.synth:
            synthesis = BackgroundSynthesis(synth_configs(spec.synth_points), cfg if spec.synth_check else None,
                                            route=spec.synth_route, timeout=spec.synth_timeout,
                                            budget=spec.synth_budget, root=synth_root)
        if "accuracy" in spec.sections:
            attempt("accuracy", lambda: bench_accuracy(
                cfg, data, n_train=spec.train, n_test=spec.test, seeds=spec.seeds, curve=spec.curve,
                rtl=spec.rtl, root=sim_root, log=log))
        if "precision" in spec.sections:
            attempt("precision", lambda: bench_precision(cfg, data, widths=spec.study_widths, n_train=spec.study_train,
                                                         n_test=spec.test, out_dir=out, log=log))
        synthesised = {}
        if synthesis is not None:       # the timed sections below run without the synthesis beside them
            t0 = time.perf_counter()
            synthesised = synthesis.wait()
            meta["synth_wait_s"] = round(time.perf_counter() - t0, 1)

        def speed():
            boards = board_figures(find_board_reports(cfg, build_root=build_root(), boards_dir=boards_dir), cfg)
            sp = bench_speed(cfg, data, boards=boards, core_synth=core_report(cfg, core_roots),
                             accuracy=res.get("accuracy"), log=log)
            sp["torch"] = torch_speed(cfg, data, b1_samples=spec.torch_b1, batched_samples=spec.torch_batched,
                                      batches=spec.torch_batches, repeats=spec.torch_repeats, log=log)
            return sp
        if "speed" in spec.sections:
            attempt("speed", speed)
        if "sim" in spec.sections and spec.rtl:
            attempt("sim", lambda: bench_sim(cfg, data, samples=spec.check_cost_samples,
                                             accuracy=res.get("accuracy"), root=sim_root, log=log))

        def scaling():
            v, f = nnz_histogram(data.train_images)
            points = synthesised.get("points", [])
            csr = core_report(cfg, core_roots)
            check = synthesised.get("check") or (csr if csr and csr["fresh"] else None)
            sc = bench_scaling(cfg, v, f, synth=[p for p in points if "error" not in p], check=check, log=log)
            sc["synth_errors"] = [p for p in points if "error" in p]
            return sc
        if "scaling" in spec.sections:
            attempt("scaling", scaling)
    finally:
        torch.set_num_threads(threads)
    meta["load_after"] = load_average()
    meta["duration_s"] = round(time.perf_counter() - t_start, 1)
    out.mkdir(parents=True, exist_ok=True)
    meta["plots"] = write_plots(res, out) + ([PRECISION_PLOT] if res.get("precision") else [])
    write_markdown(res, out)
    (out / "benchmarks.json").write_text(json.dumps(res, indent=2, default=_json_default))
    log(f"{spec.command}: done in {meta['duration_s']:.0f} s; wrote {out / 'benchmarks.md'}, {out / 'benchmarks.json'}, "
        + ", ".join(str(out / p) for p in meta["plots"]))
    return res


def _json_default(o):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"benchmarks.json: cannot write a {type(o).__name__} ({o!r})")
