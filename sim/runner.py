"""Build the core for one config with Verilator (cocotb's runner) and run a cocotb test on it.

Each parameter set builds in its own directory, named by the config's hash, under ``build/sim``
(git-ignored). A build is reused when its Verilog is unchanged.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from amaranth.back import verilog

from eqfpga.golden.config import EPConfig
from eqfpga.hdl.core import EPCore

from .toolchain import VERILATOR_WARNINGS, setup_verilator

TOP = "eqfpga_top"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / "build" / "sim"


def config_tag(cfg: EPConfig) -> str:
    return f"{cfg.name}-{hashlib.sha256(cfg.to_json().encode()).hexdigest()[:10]}"


def build(cfg: EPConfig, root: Path | None = None, *, weights=None, biases=None, train: bool = True):
    """Generate the Verilog and build the Verilator model; returns (runner, build_dir).

    ``train=False`` builds the inference-only core.
    """
    setup_verilator()
    from cocotb_tools.runner import get_runner

    root = Path(root or DEFAULT_ROOT)
    bdir = root / (config_tag(cfg) + ("" if train else "-infer"))
    bdir.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(EPCore(cfg=cfg, weights=weights, biases=biases, train=train), name=TOP)
    vfile = bdir / f"{TOP}.v"
    stamp = bdir / "verilog.sha256"
    digest = hashlib.sha256(text.encode()).hexdigest()
    runner = get_runner("verilator")
    fresh = stamp.exists() and stamp.read_text() == digest and (bdir / TOP).exists()
    if not fresh:
        vfile.write_text(text)
        runner.build(sources=[vfile], hdl_toplevel=TOP, build_dir=bdir, always=True,
                     build_args=VERILATOR_WARNINGS, log_file=bdir / "build.log")
        stamp.write_text(digest)
    else:
        runner.build_dir = bdir
    return runner, bdir


def run(cfg: EPConfig, plan: dict, name: str, root: Path | None = None, *,
        module: str = "eqfpga.sim.cocotb_core", train: bool = True) -> dict:
    """Run the cocotb test ``module`` against the core built for ``cfg``; returns its JSON report.

    ``plan`` (JSON-able) tells the test what to do; the test writes ``report.json`` in its run
    directory, whether it passes or fails.
    """
    runner, bdir = build(cfg, root, train=train)
    tdir = bdir / f"run-{name}"
    tdir.mkdir(parents=True, exist_ok=True)
    report = tdir / "report.json"
    if report.exists():
        report.unlink()
    from .expect import expectations   # torch: here, not in the simulator's Python

    (tdir / "expect.json").write_text(json.dumps(expectations(cfg, plan)))
    plan = {**plan, "cfg": cfg.to_dict(), "report": str(report), "expect": str(tdir / "expect.json")}
    (tdir / "plan.json").write_text(json.dumps(plan))
    env = {"EQFPGA_TEST_PLAN": str(tdir / "plan.json"), "AMARANTH_USE_YOSYS": "builtin"}
    try:
        runner.test(test_module=module, hdl_toplevel=TOP, hdl_toplevel_lang="verilog", build_dir=bdir, test_dir=tdir,
                    extra_env=env, results_xml=str(tdir / "results.xml"), log_file=tdir / "sim.log")
    except SystemExit as e:  # cocotb's runner exits on a failing test under pytest
        if not report.exists():
            raise RuntimeError(f"simulation of {name} failed (exit {e.code}) without a report; "
                               f"see {tdir / 'sim.log'}") from None
    if not report.exists():
        raise RuntimeError(f"simulation of {name} wrote no report; see {tdir / 'sim.log'}")
    return json.loads(report.read_text())

