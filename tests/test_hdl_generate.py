"""generate(): refuses what the hardware cannot run (naming the field), writes Verilog and report."""
import json
import subprocess
import sys

import pytest

from eqfpga.golden.config import ConfigError, load_config
from eqfpga.hdl.generate import CORE_TOP, DEFAULT_NNZ, generate
from eqfpga.hdl.plan import Plan


@pytest.mark.parametrize("change, field", [
    ({"activation": "sigmoid"}, "activation"),
    ({"nudge_placement": "outside"}, "nudge_placement"),
    ({"continual": True}, "continual"),
    ({"feedback": "learned"}, "feedback"),
    ({"batch_size": 4}, "batch_size"),
    ({"beta": 0.3}, "beta"),
    ({"lrs": (0.3, 0.125)}, "lrs[0]"),
    ({"fixed": {"acc_bits": 12}}, "fixed.acc_bits"),
])
def test_generate_refuses_with_the_field(tmp_path, change, field):
    cfg = load_config("tiny").replace(**change)
    with pytest.raises(ConfigError, match=f"'{field}'" if "[" not in field else "lrs\\[0\\]"):
        generate(cfg, tmp_path)
    assert not (tmp_path / "eqfpga_top.v").exists()


def test_generate_writes_verilog_and_report(tmp_path, capsys):
    rep = generate("tiny", tmp_path)
    text = (tmp_path / "eqfpga_top.v").read_text()
    assert "module eqfpga_top" in text
    for port in ("sample__payload", "result__valid", "access__payload", "access_rsp__payload", "t_set",
                 "seed", "cycles", "update_sat", "unsettled"):
        assert port in text, port
    on_disk = json.loads((tmp_path / "report.json").read_text())
    names = {p[0] for p in on_disk["ports"]}
    assert {"clk", "rst", "sample__payload", "access_rsp__valid", "cycling"} <= names
    for name, _, width in on_disk["ports"]:
        assert name in text
    assert on_disk["schedule"] == rep["schedule"]
    assert rep["schedule"]["nonzero_pixels"] == 12 and "all 12 pixels" in rep["nnz_source"]
    wide = load_config("tiny").replace(sizes=(200, 7, 3), fixed={"acc_bits": 32})
    assert generate(wide, tmp_path / "w", quiet=True)["schedule"]["nonzero_pixels"] == DEFAULT_NNZ
    # one multiplier a lane, shared by the update
    assert rep["multipliers"] == {"mac": {"count": 4, "width": "12s x 10s"}, "total": 4, "shared_by_update": True}
    # the estimate the build's pre-check uses, per family, from the same plan
    ecp5, ice40 = rep["fpga_estimate"]["ecp5"], rep["fpga_estimate"]["ice40"]
    assert ecp5["totals"]["dsp_blocks"] == ice40["totals"]["dsp_blocks"] == 4
    assert ecp5["totals"]["memory_bits"] == rep["memory_bits"]["total"]
    assert {k: m["width"] * m["depth"] * m["count"] for k, m in ecp5["memories"].items()} == {
        k: v for k, v in rep["memory_bits"].items() if k not in ("total", "weights_and_biases_needed")}
    assert on_disk["fpga_estimate"] == rep["fpga_estimate"]
    assert CORE_TOP == "eqfpga_top"
    assert rep["register_bits_estimate"] > 0
    assert rep["memory_bits"]["total"] >= rep["memory_bits"]["weights_and_biases_needed"]
    out = capsys.readouterr().out
    assert "cycles / training sample" in out
    assert "ecp5 estimate" in out and "MULT18X18D" in out and "SB_MAC16" in out


def test_schedule_of_the_board_net():
    """mnist-1h at P = 8, 16 and 64 with 150 non-zero pixels: schedule vs ideal bound."""
    for P in (8, 16, 64):
        _check_schedule(Plan(load_config("mnist-1h").replace(parallelism=P)), P)


def _check_schedule(pl, P):
    cyc = pl.sample_cycles(150)
    assert 28 * pl.step_cycles() <= cyc["steps"] <= 28 * pl.step_cycles() * 1.01   # waits of the guards
    assert cyc["total"] <= 1.1 * pl.ideal_cycles(150)
    assert pl.ideal_cycles(150) == -(-(150 * 128 * 2 + 28 * 2 * 128 * 10 + 128 * 10 + 138) // P)


def test_hdl_never_imports_torch():
    code = ("import sys, eqfpga.hdl.core, eqfpga.hdl.generate, eqfpga.hdl.fixed, eqfpga.hdl.arx_hash, "
            "eqfpga.hdl.resources; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert not [m for m in sys.modules if m.startswith('eqfpga.boards')], 'boards imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generate_inference_only(tmp_path, capsys):
    rep = generate("tiny", tmp_path, train=False)
    assert rep["multipliers"]["total"] == 4 and "train_cycles" not in rep["schedule"]
    assert not rep["multipliers"]["shared_by_update"] and rep["fpga_estimate"]["ecp5"]["totals"]["dsp_blocks"] == 4
    assert "inference-only" in capsys.readouterr().out


def test_generate_measures_nnz_on_images(tmp_path):
    imgs = [[0] * 150 + [7] * 50, [0] * 100 + [1] * 100]
    wide = load_config("tiny").replace(sizes=(200, 7, 3), fixed={"acc_bits": 32})
    rep = generate(wide, tmp_path, images=imgs, quiet=True)
    assert rep["schedule"]["nonzero_pixels"] == 75 and "measured on 2 images" in rep["nnz_source"]


@pytest.mark.parametrize("preset, lanes", [("tiny", None), ("mnist-1h", 4)])
def test_generated_verilog_passes_verilator_lint(tmp_path, preset, lanes):
    """`eqfpga generate` output passes a plain `verilator --lint-only` (no extra flags). mnist-1h
    with 4 lanes: its sizes and formats; the lanes are copies of one another, and lint time grows
    with them (90 s at the preset's 32)."""
    from eqfpga.sim.toolchain import setup_verilator
    setup_verilator()
    cfg = load_config(preset)
    generate(cfg if lanes is None else cfg.replace(parallelism=lanes), tmp_path, quiet=True)
    res = subprocess.run(["verilator", "--lint-only", "--top-module", "eqfpga_top", "eqfpga_top.v"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_core_verilog_does_not_depend_on_runtime_fields():
    """The seed is the core's input port, not elaborated: the core's Verilog is the same for every
    seed (and epochs, name), so one build serves them all; an elaborated field changes it."""
    from eqfpga.sim.designs import core_verilog

    cfg = load_config("tiny").replace(nudging="random_sign", fixed={"update_rounding": "stochastic"})
    base = core_verilog(cfg)
    assert "input [31:0] seed" in base
    assert core_verilog(cfg.replace(seed=0xDEADBEEF, epochs=3, name="other")) == base
    assert core_verilog(cfg.replace(T2=cfg.T2 + 1)) != base
