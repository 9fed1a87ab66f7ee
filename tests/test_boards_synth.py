"""boards.synth: the fit pre-check and the wrapper's widths (no synthesis: the tools are optional)."""
import sys

import pytest

from eqfpga.boards import synth
from eqfpga.boards.synth import DoesNotFit, dp16kd_blocks, precheck
from eqfpga.golden.config import load_config


@pytest.mark.parametrize("width, depth, gran, blocks", [
    (36, 512, None, 1), (18, 1024, None, 1), (1, 16384, None, 1), (9, 2048, None, 1),
    (37, 512, None, 2), (72, 1024, None, 4),
    (256, 6272, 16, 104),      # mnist-1h W_0: 16 lanes of 16 bits, two padded lanes per 36-bit word
    (48, 8, 12, 2),            # tiny W_0: 4 lanes of 12 bits, two per 36-bit word
])
def test_dp16kd_blocks(width, depth, gran, blocks):
    assert dp16kd_blocks(width, depth, gran) == blocks


def test_board_net_fits_the_85f():
    # the P = 16 variant (mnist-1h ships with P = 8: P = 16 does not route with YoWASP, see README)
    est = precheck(load_config("mnist-1h").replace(parallelism=16))
    assert est["memories"]["W0"]["width"] == 16 * 16 and est["memories"]["W0"]["depth"] == 8 * 784
    assert est["weight_dp16kd_min"] == 104 + 8 <= est["dp16kd_available"] == 208
    assert est["mult18x18d_estimate"] == 16 + 2 * 16 <= est["mult18x18d_available"] == 156
    assert precheck("tiny")["weight_dp16kd_min"] <= 208
    p8 = precheck("mnist-1h")
    assert p8["memories"]["W0"]["width"] == 8 * 16 and p8["mult18x18d_estimate"] == 8 + 2 * 8


def test_two_hidden_layers_do_not_fit_the_block_rams():
    with pytest.raises(DoesNotFit, match=r"mnist-2h.*LFE5U-85F.*weight memories need at least \d+ DP16KD"
                                         r".*W0 256x25088.*device has 208"):
        precheck("mnist-2h")


def test_board_net_does_not_fit_a_25f():
    with pytest.raises(DoesNotFit, match=r"at least 104 DP16KD .* device has 56"):
        precheck("mnist-1h", "LFE5U-25F")


def test_too_many_multipliers():
    cfg = load_config("tiny").replace(parallelism=64)
    with pytest.raises(DoesNotFit, match=r"needs 192 MULT18X18D \(64 MAC x 1 \+ 128 update x 1\) "
                                         r"and the device has 156"):
        precheck(cfg)
    assert precheck(cfg, train=False)["mult18x18d_estimate"] == 64


def test_refusal_comes_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "find_tool", lambda kind: pytest.fail("a tool was looked up"))
    with pytest.raises(DoesNotFit):
        synth.synth_core("mnist-2h", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'LFE5U-99F'"):
        precheck("tiny", "LFE5U-99F")


def test_missing_tools_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(synth.ToolMissing, match=r"pip install -e \.\[boards\].*native yosys on PATH"):
        synth.find_tool("yosys")
    monkeypatch.setenv("NEXTPNR_ECP5", "/opt/nextpnr-ecp5")
    assert synth.find_tool("nextpnr-ecp5") == ["/opt/nextpnr-ecp5"]


def test_wrapper_serialises_every_port():
    from eqfpga.hdl.core import EPCore
    from eqfpga.hdl.generate import port_list
    core = EPCore(cfg=load_config("tiny"))
    ports = port_list(core)[2:]                         # clk, rst stay pins
    w = synth.SerialWrapper(core)
    for e in (core, w):                                 # inspected, never elaborated: no UnusedElaboratable
        e._MustUse__silence = True
    assert w.in_bits == sum(width for _, d, width in ports if d == "in")
    assert w.out_bits == sum(width for _, d, width in ports if d == "out")


def test_critical_path_summary():
    step = lambda t, d, cell: {"type": t, "delay": d, "from": {"cell": "a", "port": "Q"},  # noqa: E731
                                "to": {"cell": cell, "port": "DI"}}
    rep = {"critical_paths": [
        {"from": "posedge clk", "to": "posedge clk",
         "path": [step("clk-to-q", 0.5, "x"), step("routing", 1.0, "core.w0.0_DI_LUT4_Z"),
                  step("logic", 0.25, "core.w0.0_DI_LUT4_Z"), step("logic", 0.25, "core.$12_MULT18X18D_P"),
                  step("setup", 0.1, "core.cnt_TRELLIS_FF_Q")]},
        {"from": "<async>", "to": "posedge clk", "path": [step("logic", 0.5, "y")]}]}
    cp = synth._critical_path(rep)
    assert cp["delay_ns"] == 2.1 and cp["logic_steps"] == 2
    assert cp["via"] == ["x", "core.w0.0_DI", "core.MULT18X18D", "core.cnt"]
    assert cp["end"] == "core.cnt_TRELLIS_FF_Q.DI"
    assert synth._critical_path({}) is None
