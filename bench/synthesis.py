"""Core syntheses for the scaling section: every one goes through :func:`synth_point`, which calls
the core build (``build_core``; it reuses earlier results in its output folder itself) and reads its
``BuildReport``. The run starts them in a separate process (:class:`BackgroundSynthesis`) so that
they run while the golden models train."""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

from eqfpga.boards.build import build_core
from eqfpga.boards.fit import DoesNotFit
from eqfpga.boards.report import FILE_NAME
from eqfpga.golden.config import EPConfig
from eqfpga.sim.build_cache import config_tag

from .reports import display_path

DEVICE = "LFE5U-85F"


def synth_point(cfg, *, route: bool, root, timeout=None, log=print) -> dict:
    """Build ``cfg``'s core on the LFE5U-85F (placed only when ``route`` is False) in
    ``root/<config tag>-route|place`` and return the figures the scaling section uses."""
    out_dir = Path(root) / (config_tag(cfg) + ("-route" if route else "-place"))
    path = out_dir / FILE_NAME
    before = path.stat().st_mtime_ns if path.exists() else None
    t0 = time.perf_counter()
    rep = build_core(cfg, out_dir, device=DEVICE, route=route, timeout=timeout, quiet=True)
    if before is not None and path.stat().st_mtime_ns == before:
        made = "cached"                     # build_core reused its earlier report
    else:
        made = f"this run ({time.perf_counter() - t0:.0f} s)"
        log(f"  synthesised {cfg.name}: {rep.fmax_mhz} MHz, LUT4 {rep.used('LUT4')}")
    return {"config": cfg.name, "sizes": list(cfg.sizes), "P": cfg.parallelism, "made": made,
            "routed": rep.routed, "fmax_mhz": rep.fmax_mhz,
            "LUT4": rep.used("LUT4"), "TRELLIS_FF": rep.used("TRELLIS_FF"),
            "MULT18X18D": rep.used("MULT18X18D"), "DP16KD": rep.used("DP16KD"),
            "report": display_path(path), "times_s": rep.times_s}


def run_job(job: dict) -> None:
    """Body of the synthesis process: every point, then the check (if any); results to job["out"]
    as JSON. A time budget shrinks the tools' timeouts to what is left of it."""
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
            out["points"].append(synth_point(c, route=job["route"], root=job["root"], timeout=tmo, log=print))
        except (DoesNotFit, RuntimeError, OSError) as e:    # tools missing, failed or too slow: in the page
            out["points"].append({"config": c.name, "sizes": list(c.sizes), "P": c.parallelism, "error": repr(e)})
    if job["check"]:             # the base config itself, placed only
        try:
            out["check"] = synth_point(EPConfig.from_dict(job["check"]), route=False, root=job["root"],
                                       timeout=job["timeout"], log=print)
        except (DoesNotFit, RuntimeError, OSError) as e:
            out["check_error"] = repr(e)
    Path(job["out"]).write_text(json.dumps(out))


class BackgroundSynthesis:
    """The syntheses of one run in a separate process: Amaranth's conversion (and its built-in Yosys)
    then never runs in two threads of one interpreter while the RTL builds convert the core."""

    def __init__(self, points: list, check: EPConfig | None, *, route: bool, timeout, budget, root):
        self._tmp = Path(tempfile.mkdtemp(prefix="eqfpga-bench-"))
        job = {"points": [c.to_dict() for c in points], "check": check.to_dict() if check else None,
               "route": route, "timeout": timeout, "budget": budget, "root": str(root),
               "out": str(self._tmp / "synth.json")}
        self._out = Path(job["out"])
        self._proc = multiprocessing.get_context("spawn").Process(target=run_job, args=(job,), daemon=True)
        self._proc.start()

    def wait(self) -> dict:
        """{"points": [synth_point result or {"error": ...}], "check": ..., "check_error": ...}."""
        self._proc.join()
        try:
            return json.loads(self._out.read_text())
        except (OSError, ValueError) as e:
            return {"points": [{"config": "all", "sizes": [], "P": 0,
                                "error": f"the synthesis process ended without results (exit {self._proc.exitcode}: {e!r})"}]}
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
