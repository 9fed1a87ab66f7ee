"""The precision study (``eqfpga.golden.study``) as a section of the run: weight width x update
rounding, all nets side by side on the same samples."""
from __future__ import annotations

import tempfile
from pathlib import Path

from eqfpga.golden.config import load_config
from eqfpga.golden.study import ROUNDINGS, plot_study, precision_study

PLOT = "bench-precision.png"


def bench_precision(cfg, data, *, widths, n_train, n_test, out_dir, log=print) -> dict:
    """The study's figures; its plot is written as bench-precision.png in ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:      # the study's own files are not kept
        r = precision_study(load_config(cfg), widths, ROUNDINGS, epochs=1, limit=n_train, test_limit=n_test,
                            data=data, out_dir=tmp, progress=False, log=lambda *a: None)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_study(r, Path(out_dir) / PLOT)
    best = min(r["rows"], key=lambda x: x["test_error"])
    log(f"  precision study: {r['nets']} nets, {r['net_samples_per_s']:.0f} net-samples/s; best "
        f"{best['weight_bits']} bits {best['rounding']}: {100 * best['test_error']:.2f}%")
    return {k: r[k] for k in ("train_samples", "test_samples", "nets", "seconds", "net_samples_per_s", "rows")}
