"""Build the core for one config with Verilator (cocotb's runner) and run a cocotb test on it.

Each design (config, initial parameters, train or inference only) builds in its own folder under
``build_dir("cocotb")``, reused as ``eqfpga.sim.build_cache`` decides.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from eqfpga.golden.config import EPConfig

from .build_cache import cached_build, core_key, core_tag, params_tag
from .designs import CORE_TOP, core_verilog
from .paths import build_dir
from .toolchain import VERILATOR_WARNINGS, setup_verilator


def build(cfg: EPConfig, root: Path | None = None, *, weights=None, biases=None, train: bool = True):
    """Generate the Verilog and build the Verilator model; returns (runner, build folder).

    ``train=False`` builds the inference-only core. ``root``: the folder of the builds (default
    ``build_dir("cocotb")``).
    """
    setup_verilator()
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    ptag = params_tag(weights, biases)
    tag = core_tag(cfg) + ("" if train else "-infer") + (f"-p{ptag}" if ptag else "")
    folder = Path(root or build_dir("cocotb")) / tag

    def generate():
        return {f"{CORE_TOP}.v": core_verilog(cfg, weights=weights, biases=biases, train=train)}

    def compile(bdir: Path):
        runner.build(sources=[bdir / f"{CORE_TOP}.v"], hdl_toplevel=CORE_TOP, build_dir=bdir, always=True,
                     build_args=VERILATOR_WARNINGS, log_file=bdir / "build.log")

    cached_build(folder, CORE_TOP, key=f"{core_key(cfg)} train={train} params={ptag}",
                 flags=VERILATOR_WARNINGS, generate=generate, compile=compile)
    runner.build_dir = folder
    return runner, folder


def run(cfg: EPConfig, plan: dict, name: str, root: Path | None = None, *,
        module: str = "eqfpga.sim.cocotb_core", train: bool = True) -> dict:
    """Run the cocotb test ``module`` against the core built for ``cfg``; returns its JSON report.

    ``plan`` (JSON-able) tells the test what to do; the test writes ``report.json`` in its run
    folder, whether it passes or fails.
    """
    runner, bdir = build(cfg, root, train=train)
    tdir = bdir / f"run-{name}"
    tdir.mkdir(parents=True, exist_ok=True)
    report = tdir / "report.json"
    report.unlink(missing_ok=True)
    from .expect import expectations   # torch: here, not in the simulator's Python

    (tdir / "expect.json").write_text(json.dumps(expectations(cfg, plan)))
    plan = {**plan, "cfg": cfg.to_dict(), "report": str(report), "expect": str(tdir / "expect.json")}
    (tdir / "plan.json").write_text(json.dumps(plan))
    env = {"EQFPGA_TEST_PLAN": str(tdir / "plan.json"),
           "AMARANTH_USE_YOSYS": os.environ.get("AMARANTH_USE_YOSYS", "builtin")}
    try:
        runner.test(test_module=module, hdl_toplevel=CORE_TOP, hdl_toplevel_lang="verilog", build_dir=bdir,
                    test_dir=tdir, extra_env=env, results_xml=str(tdir / "results.xml"), log_file=tdir / "sim.log")
    except SystemExit as e:  # cocotb's runner exits on a failing test under pytest
        if not report.exists():
            raise RuntimeError(f"simulation of {name} failed (exit {e.code}) without a report; "
                               f"see {tdir / 'sim.log'}") from None
    if not report.exists():
        raise RuntimeError(f"simulation of {name} wrote no report; see {tdir / 'sim.log'}")
    return json.loads(report.read_text())
