"""The tool flow (eqfpga.boards.build): board names, the device table, PLL dividers, the resource
estimate and the fit pre-check with its messages, the tops elaborating, the tool runner, the report;
and, when the `boards` extra (YoWASP) is installed, a real place and route of a small core with the
reuse of earlier work."""
import hashlib
import json
import os
import sys
import zlib
from pathlib import Path

import pytest

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from eqfpga.boards import build, tools  # noqa: E402
from eqfpga.boards.build import build_board, build_core, format_report  # noqa: E402
from eqfpga.boards.devices import DEVICES, device  # noqa: E402
from eqfpga.boards.fit import DoesNotFit, precheck, precheck_board  # noqa: E402
from eqfpga.boards.nextpnr import critical_path  # noqa: E402
from eqfpga.boards.platforms import UnsupportedBoard, resolve_board  # noqa: E402
from eqfpga.boards.report import BuildReport, Resource  # noqa: E402
from eqfpga.boards.tools import ToolMissing, find_tool, run_tool  # noqa: E402
from eqfpga.golden.config import load_config  # noqa: E402
from eqfpga.hdl.protocol import config_crc  # noqa: E402
from eqfpga.hdl.resources import dp16kd_blocks, ebr_blocks, estimate  # noqa: E402
from eqfpga.boards.top import (ECP5_PLL, ICE40_PLL, BoardTop, PLLError, ecp5_pll, ice40_pll,  # noqa: E402
                               plan_clock, uart_divisor)


# ---- board names ------------------------------------------------------------------------------
def test_known_boards():
    u = resolve_board("ulx3s-85f")
    assert (u.family, u.device, u.osc_hz, u.default_baud) == ("ecp5", "LFE5U-85F", 25e6, 3_000_000)
    assert u.resources["DP16KD"] == 208 and u.resources["MULT18X18D"] == 156
    assert len(u.leds) == 8 and u.uart == ("uart", 0)
    i = resolve_board("iCEBreaker")
    assert (i.family, i.device, i.osc_hz) == ("ice40", "iCE40UP5K", 12e6)
    assert i.resources == {"LC": 5280, "EBR": 30, "DSP": 8, "SPRAM": 4, "PLL": 1}
    assert ("led_g", 0) in i.leds and ("led_r", 0) in i.leds


def test_module_class_boards():
    b = resolve_board("amaranth_boards.icestick:ICEStickPlatform")
    assert b.family == "ice40" and b.device == "iCE40HX1K"
    b = resolve_board("amaranth_boards.ulx3s:ULX3S_45F_Platform")
    assert b.family == "ecp5" and b.resources["DP16KD"] == 108


@pytest.mark.parametrize("name, words", [
    ("arty", ["unknown board", "ulx3s-85f", "icebreaker", "module:Class"]),
    ("amaranth_boards.arty_a7:ArtyA7_35Platform", ["XilinxPlatform", "only ECP5 and iCE40"]),
    ("amaranth_boards.tinyfpga_ax2:TinyFPGAAX2Platform", ["LCMXO2", "only ECP5 and iCE40"]),
    ("amaranth_boards.no_such_board:X", ["cannot import"]),
    ("amaranth_boards.ulx3s:NoSuchPlatform", ["no platform class"]),
    ("amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", ["no uart"]),
])
def test_board_errors(name, words):
    with pytest.raises(UnsupportedBoard) as e:
        resolve_board(name)
    for w in words:
        assert w in str(e.value)


# ---- PLL dividers -----------------------------------------------------------------------------
@pytest.mark.parametrize("mhz, divs", [
    # (CLKI_DIV, CLKFB_DIV, CLKOP_DIV) as Project Trellis' ecppll -i 25 -o MHZ computes them
    (100, (1, 4, 6)), (60, (5, 12, 10)), (75, (1, 3, 8)), (48, (8, 15, 13)),
])
def test_ecp5_pll_matches_ecppll(mhz, divs):
    p = ecp5_pll(25e6, mhz * 1e6)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"]) == divs
    assert p["f_out_hz"] == pytest.approx(25e6 * divs[1] / divs[0])


@pytest.mark.parametrize("mhz, divs", [
    # (DIVR, DIVF, DIVQ, FILTER_RANGE) as Project IceStorm's icepll -i 12 -o MHZ computes them
    (24, (0, 63, 5, 1)), (36, (0, 47, 4, 1)), (48, (0, 63, 4, 1)), (30, (0, 79, 5, 1)), (60, (0, 79, 4, 1)),
])
def test_ice40_pll_matches_icepll(mhz, divs):
    p = ice40_pll(12e6, mhz * 1e6)
    assert (p["DIVR"], p["DIVF"], p["DIVQ"], p["FILTER_RANGE"]) == divs
    assert p["f_out_hz"] == pytest.approx(mhz * 1e6)


@pytest.mark.parametrize("mhz", [12.5, 20, 33.3, 50, 66.6, 80, 99, 125, 150, 200, 333])
def test_ecp5_pll_in_range_and_close(mhz):
    p = ecp5_pll(25e6, mhz * 1e6)
    lo, hi = ECP5_PLL["vco_mhz"]
    assert lo <= p["f_vco_hz"] / 1e6 <= hi
    assert ECP5_PLL["pfd_mhz"][0] <= p["f_pfd_hz"] / 1e6
    assert abs(p["f_out_hz"] / (mhz * 1e6) - 1) < 0.015     # 25 MHz / CLKI_DIV <= 8 steps
    assert p["f_vco_hz"] == pytest.approx(p["f_out_hz"] * p["CLKOP_DIV"])
    assert p["CLKOP_CPHASE"] == p["CLKOP_DIV"] - 1


@pytest.mark.parametrize("mhz", [16.5, 20, 25, 33.3, 40, 50, 66, 90, 120, 200, 270])
def test_ice40_pll_in_range_and_close(mhz):
    p = ice40_pll(12e6, mhz * 1e6)
    assert ICE40_PLL["vco_mhz"][0] <= p["f_vco_hz"] / 1e6 <= ICE40_PLL["vco_mhz"][1]
    assert ICE40_PLL["out_mhz"][0] <= p["f_out_hz"] / 1e6 <= ICE40_PLL["out_mhz"][1]
    assert p["f_out_hz"] == pytest.approx(12e6 * (p["DIVF"] + 1) / (p["DIVR"] + 1) / 2 ** p["DIVQ"])
    assert abs(p["f_out_hz"] / (mhz * 1e6) - 1) < 0.01


def test_pll_refusals():
    with pytest.raises(PLLError, match="outside"):
        ecp5_pll(25e6, 500e6)
    with pytest.raises(PLLError, match="outside"):
        ice40_pll(12e6, 10e6)
    with pytest.raises(PLLError, match="outside"):
        ice40_pll(5e6, 48e6)


def test_clock_plan_without_pll():
    b = resolve_board("ulx3s-85f")
    c = plan_clock(b, 25e6)
    assert c["pll"] is None and c["f_out_hz"] == 25e6
    assert plan_clock(b, 60e6)["pll"]["primitive"] == "EHXPLLL"
    assert plan_clock(resolve_board("icebreaker"), 24e6)["pll"]["primitive"] == "SB_PLL40_PAD"


def test_uart_divisor():
    assert uart_divisor(60e6, 3_000_000) == (20, 0.0)
    d, err = uart_divisor(50e6, 3_000_000)
    assert d == 17 and err == pytest.approx(-1.96, abs=0.01)
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(12e6, 4_000_000)


# ---- pre-check --------------------------------------------------------------------------------
def test_precheck_refuses_mnist_2h_on_ulx3s():
    with pytest.raises(DoesNotFit) as e:
        precheck_board("mnist-2h", "ulx3s-85f")
    msg = str(e.value)
    assert "mnist-2h" in msg and "DP16KD" in msg and "656" in msg and "208" in msg and "ulx3s-85f" in msg


def test_precheck_refuses_mnist_1h_on_icebreaker():
    with pytest.raises(DoesNotFit) as e:
        precheck_board("mnist-1h", "icebreaker")
    msg = str(e.value)
    assert "EBR" in msg and "448" in msg and "30" in msg and "SPRAM" in msg


def test_precheck_refuses_tiny_on_icebreaker():
    # measured with the earlier core: 10,499 of 5,280 logic cells
    with pytest.raises(DoesNotFit) as e:
        precheck_board("tiny", "icebreaker")
    msg = str(e.value)
    assert "SB_MAC16" not in msg and "logic cells" in msg and "5,280" in msg


def test_precheck_accepts():
    est = precheck_board("mnist-1h", "ulx3s-85f")
    assert est.weight_blocks + est.link_blocks <= 208
    assert est.logic < 83640
    assert precheck_board("tiny", "ulx3s-85f").dsp_blocks <= 156
    # P = 64: one weight memory a lane (W_0 and W_1 in 2 DP16KD), logic from Family.logic_fit
    assert (est.weight_blocks, est.link_blocks, est.memory_blocks, est.dsp_blocks, est.logic) == (128, 4, 131, 64, 65706)
    p32 = precheck_board(load_config("mnist-1h").replace(parallelism=32), "ulx3s-85f")
    assert (p32.weight_blocks, p32.dsp_blocks, p32.logic) == (128, 32, 34503)


def test_ebr_blocks():
    assert ebr_blocks(16, 256) == 1
    assert ebr_blocks(8, 4096) == 8                  # 8 x 512 mode
    assert ebr_blocks(18, 784) == 5                  # 4 x 1024 mode, 5 across
    assert ebr_blocks(256, 6272, 16) == 16 * 25      # 16 x 256 mode with its write mask


def test_build_refuses_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    monkeypatch.setattr(build, "find_tool", lambda kind: pytest.fail("a tool was looked up"))
    with pytest.raises(DoesNotFit):
        build_board("ulx3s-85f", "mnist-2h", tmp_path / "a")
    with pytest.raises(ValueError, match="baud"):      # 25 MHz / 3 Mbaud: divisor 8, 4.2% off
        build_board("ulx3s-85f", "tiny", tmp_path / "b", clock_hz=25e6)
    with pytest.raises(DoesNotFit):
        build_core("mnist-2h", tmp_path / "c")
    with pytest.raises(ValueError, match="no package 'BG381'.*CABGA381"):
        build_core("tiny", tmp_path / "d", package="BG381")
    assert not any((tmp_path / d).exists() for d in "abcd")


def test_find_tool_env(monkeypatch):
    monkeypatch.setenv("NEXTPNR_ICE40", "/opt/x/nextpnr-ice40")
    assert find_tool("nextpnr-ice40") == ["/opt/x/nextpnr-ice40"]


# ---- the top elaborates ------------------------------------------------------------------------
@pytest.mark.parametrize("board, clock_mhz, prim, constraints, pins", [
    ("ulx3s-85f", 60, "EHXPLLL", "top.lpf", ['SITE "M1"', 'SITE "L4"', 'SITE "B2"']),
    ("icebreaker", 24, "SB_PLL40_PAD", "top.pcf", ["uart_0__rx__io 6", "uart_0__tx__io 9", "led_g_0__io 37"]),
])
def test_top_prepares_for_board(board, clock_mhz, prim, constraints, pins):
    b = resolve_board(board)
    top = BoardTop("tiny", b, clock_hz=clock_mhz * 1e6)
    assert top.clock_hz == clock_mhz * 1e6 and top.divisor == round(clock_mhz * 1e6 / 3e6)
    plan = b.platform().prepare(top, name="top")
    il = plan.files["top.il"]
    assert prim in il and "reset_sync" in il and "link" in il
    pll = top.clock["pll"]
    keys = ("CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV") if prim == "EHXPLLL" else ("DIVR", "DIVF", "DIVQ")
    for k in keys:
        assert f"parameter \\{k} {pll[k]}" in il
    assert "LOCK" in il
    text = plan.files[constraints]
    for p in pins:
        assert p in text
    ys = plan.files["top.ys"]
    assert ("synth_ecp5" if prim == "EHXPLLL" else "synth_ice40") in ys


def test_top_without_pll():
    b = resolve_board("ulx3s-85f")
    top = BoardTop("tiny", b, clock_hz=25e6, baud=1_000_000)
    assert top.clock["pll"] is None and top.divisor == 25
    plan = b.platform().prepare(top, name="top")
    assert "EHXPLLL" not in plan.files["top.il"] and "reset_sync" in plan.files["top.il"]


def test_format_report():
    r = BuildReport(
        kind="board", family="ecp5", device="LFE5U-85F", package="BG381", board="ulx3s-85f",
        config=load_config("tiny").to_dict(), target_mhz=60.0, fmax_mhz=70.1, routed=True, status="routed",
        clock={"achieved_mhz": 60.0, "target_mhz": 60.0, "oscillator_mhz": 25.0, "pll": {"primitive": "EHXPLLL"}},
        uart={"baud": 3_000_000, "divisor": 20, "error_pct": 0.0},
        resources={"DP16KD": Resource(3, 208)}, critical_path=None, times_s={"yosys_s": 1.0, "nextpnr_s": 2.0},
        bitstream="top.bit", bitstream_bytes=1000, program="openFPGALoader -b ulx3s top.bit")
    t = format_report(r)
    assert "PASS" in t and "EHXPLLL" in t and "DP16KD" in t and "divisor 20" in t
    core = BuildReport(
        kind="core", family="ecp5", device="LFE5U-85F", package="CABGA381", config=load_config("tiny").to_dict(),
        target_mhz=100.0, fmax_mhz=26.3, routed=False, status="placed (--no-route)",
        resources={"LUT4": Resource(3932, 83640)}, times_s={"yosys_s": 1.0},
        wrapper={"in_bits": 100, "out_bits": 300, "overhead_estimate": {"TRELLIS_FF": 400, "LUT4": 300}})
    t = format_report(core)
    assert "FAIL" in t and "NOT ROUTED" in t and "the core alone" in t and "~400 FF" in t and "4.7%" in t


def test_precheck_refuses_smallest_mnist_net_on_icebreaker():
    # 784-8-10, P = 1, 8-bit weights: measured 6,483 logic cells and 35 EBR after synthesis
    from eqfpga.golden.config import load_config
    cfg = load_config("tiny").replace(name="mnist-ice40-min", sizes=(784, 8, 10), parallelism=1,
                                      fixed={"weight_bits": 8, "weight_frac": 7, "bias_bits": 8, "bias_frac": 7,
                                             "acc_bits": 26, "update_bits": 8, "update_rounding": "stochastic"})
    with pytest.raises(DoesNotFit, match="EBR"):
        precheck_board(cfg, "icebreaker")


def test_reset_held_until_pll_lock():
    from amaranth.hdl import ClockDomain, Module, Signal
    from amaranth.sim import Simulator

    from eqfpga.boards.top import hold_reset_until
    m = Module()
    m.domains.sync = ClockDomain("sync")
    lock, count = Signal(), Signal(8)
    hold_reset_until(m, lock)
    m.d.sync += count.eq(count + 1)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    seen = {}

    async def tb(ctx):                              # delays, not ticks: ticks stop at a domain reset
        await ctx.delay(10.25e-6)
        seen["before"] = ctx.get(count)             # no lock: held in reset
        ctx.set(lock, 1)
        await ctx.delay(10e-6)
        seen["after"] = ctx.get(count)
        ctx.set(lock, 0)                            # lock lost: reset again at once
        await ctx.delay(2e-6)
        seen["lost"] = ctx.get(count)

    sim.add_testbench(tb)
    sim.run()
    assert seen["before"] == 0
    assert 6 <= seen["after"] <= 9                  # released a couple of cycles after LOCK rose
    assert seen["lost"] == 0


def test_board_reset_covers_the_core_drain():
    """The lanes and trees have no reset: the board holds its reset Plan.drain + 2 cycles after the
    PLL locks, so that the reset controller's NOPs flush them (boards.top.hold_reset_until)."""
    from amaranth.hdl import ClockDomain, Module, Signal
    from amaranth.sim import Simulator

    from eqfpga.boards.top import hold_reset_until
    from eqfpga.hdl.plan import Plan
    drain = Plan(load_config("mnist-1h")).drain
    m = Module()
    m.domains.sync = ClockDomain("sync")
    lock, count = Signal(), Signal(8)
    hold_reset_until(m, lock, cycles=drain + 2)
    m.d.sync += count.eq(count + 1)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    seen = {}

    async def tb(ctx):
        ctx.set(lock, 1)
        await ctx.delay((drain + 1.25) * 1e-6)
        seen["held"] = ctx.get(count)
        await ctx.delay(10e-6)
        seen["after"] = ctx.get(count)

    sim.add_testbench(tb)
    sim.run()
    assert seen["held"] == 0 and 5 <= seen["after"] <= 12


def test_exact_clock_suggestion():
    from eqfpga.boards.build import exact_clock
    assert exact_clock(resolve_board("ulx3s-85f"), 3_000_000, 25e6) == 30e6     # 25 MHz / 5 x 6
    assert exact_clock(resolve_board("icebreaker"), 3_000_000, 12e6) == 12e6     # the oscillator, no PLL


# ---- the device table -------------------------------------------------------------------------
def test_device_table():
    d = device("LFE5U-85F")
    assert (d.family, d.nextpnr_flag, d.luts, d.dsps, d.block_rams, d.speed) == ("ecp5", "--85k", 83640, 156, 208, "6")
    assert d.default_package == "CABGA381" and d.clock_pads["CABGA381"] == "G2"
    assert device("LFE5UM5G-45F").nextpnr_flag == "--um5g-45k" and device("LFE5UM5G-45F").block_rams == 108
    up = device("iCE40UP5K")
    assert (up.family, up.nextpnr_flag, up.luts, up.block_rams, up.dsps, up.spram) == ("ice40", "--up5k", 5280, 30, 8, 4)
    assert up.nextpnr_package("SG48") == "sg48" and device("iCE40HX4K").nextpnr_package("TQ144") == "tq144:4k"
    assert d.nextpnr_package("BG381") == "CABGA381"
    # every board resolves to an entry of the one table
    for name in ("ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "icebreaker"):
        b = resolve_board(name)
        assert b.part is DEVICES[b.device] and b.resources == b.part.resources()
    with pytest.raises(ValueError, match="unknown device 'LFE5U-99F'"):
        device("LFE5U-99F")


# ---- the resource estimate and the pre-check of a device (the core alone) ---------------------
@pytest.mark.parametrize("width, depth, gran, blocks", [
    (36, 512, None, 1), (18, 1024, None, 1), (1, 16384, None, 1), (9, 2048, None, 1),
    (37, 512, None, 2), (72, 1024, None, 4),
    (256, 6272, 16, 104),      # mnist-1h W_0: 16 lanes of 16 bits, two padded lanes per 36-bit word
    (48, 8, 12, 2),            # tiny W_0: 4 lanes of 12 bits, two per 36-bit word
])
def test_dp16kd_blocks(width, depth, gran, blocks):
    assert dp16kd_blocks(width, depth, gran) == blocks


def test_board_net_fits_the_85f():
    # mnist-1h at P = 32: one 1024 x 18 DP16KD per hidden neuron, W_1 in the room they leave, one
    # multiplier a lane
    est = precheck(load_config("mnist-1h").replace(parallelism=32))
    w = est.memories["W"]
    assert (w.width, w.depth, w.count, w.blocks) == (16, 4 * 784 + 4 * 10, 32, 128)
    assert est.weight_blocks == 128 <= device("LFE5U-85F").block_rams == 208
    assert est.dsp_blocks == 32 <= device("LFE5U-85F").dsps == 156
    p64 = precheck("mnist-1h")              # the preset ships with P = 64
    assert p64.memories["W"].depth == 2 * 784 + 2 * 10 and p64.weight_blocks == 128 and p64.dsp_blocks == 64
    assert p64.logic == 65706              # the P = 64 build at 6e144cb packed 65,123 TRELLIS_COMB
    with pytest.raises(DoesNotFit, match=r"P=128.*logic \(core\) is estimated at 128,112 LUT4"):
        precheck(load_config("mnist-1h").replace(parallelism=128))
    assert precheck("tiny").weight_blocks <= 208
    p16 = precheck(load_config("mnist-1h").replace(parallelism=16))
    assert p16.memories["W"].depth == 8 * 784 + 8 * 10 and p16.weight_blocks == 16 * 7 and p16.dsp_blocks == 16


def test_two_hidden_layers_do_not_fit_the_block_rams():
    with pytest.raises(DoesNotFit, match=r"mnist-2h.*LFE5U-85F.*weight memories need at least \d+ DP16KD"
                                         r".*W 16x41792 x 16 lanes.*device has 208"):
        precheck("mnist-2h")


def test_board_net_does_not_fit_a_25f():
    with pytest.raises(DoesNotFit, match=r"at least 128 DP16KD .* device has 56"):
        precheck("mnist-1h", "LFE5U-25F")


def test_too_many_multipliers():
    cfg = load_config("tiny").replace(parallelism=200)
    with pytest.raises(DoesNotFit, match=r"needs 200 MULT18X18D \(200 MAC x 1\) and the device has 156"):
        precheck(cfg)


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'LFE5U-99F'"):
        precheck("tiny", "LFE5U-99F")


def test_estimate_counts_from_the_plan():
    cfg = load_config("mnist-1h")
    e = estimate(cfg, "ecp5")
    (mac,) = e.multipliers        # one a lane, shared by the update
    assert (mac.role, mac.count, mac.width) == ("mac", 64, "16s x 10s")
    assert e.dsp_per_multiplier == (1,) and e.multiplier_count == e.dsp_blocks == 64
    assert e.link_memories == {} and estimate(cfg, "ecp5", link=True).link_blocks == 4
    # iCE40: 16 x 16 DSPs, EBR blocks, no LUT RAM (the shallow memories go to logic)
    i = estimate(load_config("tiny"), "ice40")
    assert i.dsp_blocks == 4 and i.memories["b0"].depth == 2 and i.memories["b0"].blocks == 0
    wide = load_config("tiny").replace(fixed={"weight_bits": 20, "weight_frac": 16})
    assert estimate(wide, "ecp5").dsp_per_multiplier[0] == 2 and estimate(wide, "ice40").dsp_per_multiplier[0] == 2
    assert estimate(cfg, "ecp5", train=False).multipliers == (mac,)
    d = e.to_dict()
    assert d["totals"]["dsp_blocks"] == 64 and d["multipliers"][0]["width"] == "16s x 10s"
    json.dumps(d)
    with pytest.raises(ValueError, match="unknown FPGA family 'gowin'"):
        estimate(cfg, "gowin")


# ---- the tool runner ----------------------------------------------------------------------------
def test_missing_tools_say_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("YOSYS", raising=False)
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(ToolMissing, match=r"pip install -e \.\[boards\].*native yosys on PATH"):
        find_tool("yosys")
    monkeypatch.setenv("NEXTPNR_ECP5", "/opt/nextpnr-ecp5")
    assert find_tool("nextpnr-ecp5") == ["/opt/nextpnr-ecp5"]


def test_run_tool(tmp_path):
    py = sys.executable
    assert tools.run_tool([py, "-c", "print('hello')"], tmp_path, "a.log") >= 0
    assert (tmp_path / "a.log").read_text() == "hello\n"
    with pytest.raises(tools.ToolFailed, match=r"failed \(status 3\).*\n.*oops"):
        tools.run_tool([py, "-c", "import sys; print('oops'); sys.exit(3)"], tmp_path, "b.log")
    with pytest.raises(tools.ToolTimeout) as e:
        tools.run_tool([py, "-c", "import time; time.sleep(30)"], tmp_path, "c.log", timeout=0.5)
    assert 0.4 <= e.value.seconds < 10 and isinstance(e.value, TimeoutError)


# ---- the core-only top ------------------------------------------------------------------------
def test_wrapper_serialises_every_port():
    from eqfpga.boards.top import SerialWrapper
    from eqfpga.hdl.core import EPCore
    from eqfpga.hdl.generate import port_list
    core = EPCore(cfg=load_config("tiny"))
    ports = port_list(core)[2:]                         # clk, rst stay pins
    w = SerialWrapper(core)
    for e in (core, w):                                 # inspected, never elaborated: no UnusedElaboratable
        e._MustUse__silence = True
    assert w.in_bits == sum(width for _, d, width in ports if d == "in")
    assert w.out_bits == sum(width for _, d, width in ports if d == "out")
    assert w.overhead == {"TRELLIS_FF": w.in_bits + w.out_bits, "LUT4": w.out_bits}


def test_wrapper_verilog_has_five_pins(tmp_path):
    from eqfpga.boards.top import WRAPPER_TOP
    w = build.write_wrapper_verilog(MINI, tmp_path)
    text = (tmp_path / f"{WRAPPER_TOP}.v").read_text()
    head = text[text.index(f"module {WRAPPER_TOP}("):]
    head = head[:head.index(");")]
    assert sorted(p.strip() for p in head[head.index("(") + 1:].split(",")) == ["clk", "load", "rst", "sin", "sout"]
    assert w["in_bits"] > 0 and w["out_bits"] > 0 and w["pins"] == ["clk", "rst", "sin", "load", "sout"]


def test_critical_path_summary():
    step = lambda t, d, cell: {"type": t, "delay": d, "from": {"cell": "a", "port": "Q"},  # noqa: E731
                                "to": {"cell": cell, "port": "DI"}}
    rep = {"critical_paths": [
        {"from": "posedge clk", "to": "posedge clk",
         "path": [step("clk-to-q", 0.5, "x"), step("routing", 1.0, "core.w0.0_DI_LUT4_Z"),
                  step("logic", 0.25, "core.w0.0_DI_LUT4_Z"), step("logic", 0.25, "core.$12_MULT18X18D_P"),
                  step("setup", 0.1, "core.cnt_TRELLIS_FF_Q")]},
        {"from": "<async>", "to": "posedge clk", "path": [step("logic", 0.5, "y")]}]}
    cp = critical_path(rep)
    assert cp["delay_ns"] == 2.1 and cp["logic_steps"] == 2
    assert cp["via"] == ["x", "core.w0.0_DI", "core.MULT18X18D", "core.cnt"]
    assert cp["end"] == "core.cnt_TRELLIS_FF_Q.DI"
    assert critical_path({}) is None


# ---- the committed report ---------------------------------------------------------------------
def test_committed_board_report_loads():
    path = Path(__file__).resolve().parents[1] / "docs" / "boards" / "ulx3s-85f-mnist-1h.json"
    r = BuildReport.load(path)
    assert (r.kind, r.board, r.device, r.fmax_mhz, r.target_mhz, r.routed, r.timing_met) == (
        "board", "ulx3s-85f", "LFE5U-85F", 63.7, 45.0, True, True)
    assert r.used("DP16KD") == 117 and r.used("MULT18X18D") == 25 and r.used("LUT4") == 10771
    assert r.used("TRELLIS_COMB") == 18123 and r.used("TRELLIS_FF") == 13845
    assert r.times_s["nextpnr_s"] == 885.1 and r.bitstream_bytes == 894995
    # the earlier core's build: mnist-1h with P = 8 (the preset now ships with P = 32)
    assert r.epconfig == load_config("mnist-1h").replace(parallelism=8)
    # a protocol version 1 build: its digest (and its INFO's config_crc) hashed the whole config JSON;
    # since version 2 both cover the elaborated fields only (build.config_digest)
    js = r.epconfig.to_json().encode()
    assert r.config_digest == {"sha256": hashlib.sha256(js).hexdigest()[:16], "crc32": f"{zlib.crc32(js):08x}"}
    assert r.precheck["totals"]["weight_blocks"] == 104 and r.precheck["totals"]["logic"] == 17584


def test_committed_lane_local_report_loads():
    """The lane-local core's first ULX3S build (P = 32, 100 MHz target): routed, timing failed."""
    p32 = load_config("mnist-1h").replace(parallelism=32)       # the preset before it moved to P = 64
    path = Path(__file__).resolve().parents[1] / "docs" / "boards" / "lane-local" / "ulx3s-85f-mnist-1h-p32.json"
    r = BuildReport.load(path)
    assert (r.kind, r.board, r.fmax_mhz, r.target_mhz, r.routed, r.timing_met) == (
        "board", "ulx3s-85f", 50.36, 100.0, True, False)
    assert (r.used("DP16KD"), r.used("MULT18X18D"), r.used("TRELLIS_FF")) == (134, 32, 49236)
    assert r.epconfig == p32
    # build 2: broadcast registers kept apart, long delays in LUT RAM; the reset net now the slowest
    r2 = BuildReport.load(path.with_name("ulx3s-85f-mnist-1h-p32-build2.json"))
    assert (r2.fmax_mhz, r2.routed, r2.timing_met, r2.used("TRELLIS_FF"), r2.used("TRELLIS_COMB")) == (
        51.07, True, False, 48281, 62354)
    assert r2.critical_path["end"].endswith(".LSR") and r2.epconfig == p32
    # build 3: no reset on the data path; the controller's next-op logic is now the slowest
    r3 = BuildReport.load(path.with_name("ulx3s-85f-mnist-1h-p32-build3.json"))
    assert (r3.fmax_mhz, r3.routed, r3.timing_met, r3.used("TRELLIS_FF"), r3.used("TRELLIS_COMB")) == (
        60.28, True, False, 48307, 61488)
    assert ".ctrl." in r3.critical_path["start"] and r3.epconfig == p32
    # the control proxy (784-32-10, P = 8) after the controller and link changes: 99.9 MHz
    p4 = BuildReport.load(path.with_name("control-proxy-build4.json"))
    assert (p4.fmax_mhz, p4.routed, p4.used("TRELLIS_FF")) == (99.9, True, 16663)
    assert p4.epconfig == load_config(path.with_name("control-proxy.json"))
    # P = 64 (docs/boards/lane-local/mnist-1h-p64.json), commit d7a586c: the first P = 64 build that routes
    l64 = BuildReport.load(path.with_name("ulx3s-85f-mnist-1h-p64-d7a586c.json"))
    assert (l64.fmax_mhz, l64.routed, l64.timing_met, l64.used("TRELLIS_COMB"), l64.used("TRELLIS_FF")) == (
        67.4, True, False, 66561, 63666)
    assert (l64.used("DP16KD"), l64.used("MULT18X18D")) == (134, 64)
    assert l64.epconfig == load_config(path.with_name("mnist-1h-p64.json"))


# ---- the flow, with stand-in tools: reuse of earlier work, timeouts, overflow ------------------
MINI = load_config("tiny").replace(name="mini", sizes=(4, 3, 2), parallelism=1)

FAKE_TOOL = r'''
import json, os, re, sys, time
from pathlib import Path
kind = Path(sys.argv[0]).name
args = sys.argv[1:]
with open(Path(sys.argv[0]).parent / "calls.log", "a") as fh:
    fh.write(kind + "\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
if kind == "yosys":
    if "-p" in args:
        script = opt("-p")
        design = re.search(r"read_verilog -sv (\S+);", script).group(1)
        netlist = re.search(r"-json (\S+);", script).group(1)
    else:
        script = Path(args[-1]).read_text()
        design = re.search(r"read_rtlil (\S+)", script).group(1)
        netlist = re.search(r"write_json (\S+)", script).group(1)
    Path(netlist).write_text(json.dumps({"design": len(Path(design).read_bytes())}))
    Path("yosys_stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {"LUT4": 11, "TRELLIS_FF": 7}}}))
    Path(opt("-l")).write_text("yosys ran\n")
elif kind.startswith("nextpnr"):
    mode = os.environ.get("FAKE_PNR", "ok")
    freq = float(opt("--freq"))
    log = Path(opt("--log"))
    if mode == "overflow":
        log.write_text("Info: Device utilisation:\nInfo:       DP16KD:   300/   208   144%\n")
        sys.exit(1)
    log.write_text(f"Info: Max frequency for clock 'clk': 33.30 MHz (FAIL at {freq:.2f} MHz)\n")
    if mode == "sleep":
        time.sleep(60)
    log.write_text(log.read_text() + f"Info: Max frequency for clock 'clk': 123.45 MHz (PASS at {freq:.2f} MHz)\n")
    Path(opt("--report")).write_text(json.dumps({
        "utilization": {"TRELLIS_COMB": {"used": 20, "available": 83640}, "DP16KD": {"used": 2, "available": 208},
                        "ICESTORM_LC": {"used": 20, "available": 5280}},
        "fmax": {"clk": {"achieved": 123.45, "constraint": freq}}, "critical_paths": []}))
    for o in ("--textcfg", "--asc"):
        if opt(o):
            Path(opt(o)).write_text("placed\n")
else:
    out = opt("--bit") or args[-1]
    Path(out).write_bytes(b"bitstream")
'''


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for kind, env in tools.TOOL_ENV.items():
        p = bin_dir / kind
        p.write_text(f"#!{sys.executable}\n" + FAKE_TOOL)
        p.chmod(0o755)
        monkeypatch.setenv(env, str(p))

    def calls():
        log = bin_dir / "calls.log"
        lines = log.read_text().split() if log.exists() else []
        return {k: lines.count(k) for k in ("yosys", "nextpnr-ecp5", "nextpnr-ice40", "ecppack")}
    return calls


def test_core_build_reuses_earlier_work(tmp_path, fake_tools):
    out = tmp_path / "core"
    r1 = build_core(MINI, out, device="LFE5U-25F", quiet=True)
    assert fake_tools() == {"yosys": 1, "nextpnr-ecp5": 1, "nextpnr-ice40": 0, "ecppack": 0}
    assert (r1.kind, r1.device, r1.package, r1.fmax_mhz, r1.target_mhz, r1.routed, r1.timing_met) == (
        "core", "LFE5U-25F", "CABGA381", 123.45, 100.0, True, True)
    assert r1.resources["LUT4"] == Resource(11, 24288, r1.resources["LUT4"].note)
    assert r1.used("DP16KD") == 2 and r1.wrapper["in_bits"] > 0 and r1.tools["router"] == "router2"
    assert r1.precheck["device"] == "LFE5U-25F" and r1.precheck["available"]["DP16KD"] == 56
    assert BuildReport.load(out / "report.json") == r1
    assert sorted(p.name for p in out.iterdir()) == ["_work", "nextpnr.log", "nextpnr_report.json",
                                                      "report.inputs.sha256", "report.json", "yosys.log"]
    cmd = (out / "_work" / "clock.lpf").read_text()
    assert 'SITE "G2"' in cmd

    # the same again: neither yosys nor nextpnr runs, the earlier report comes back
    assert build_core(MINI, out, device="LFE5U-25F", quiet=True) == r1
    assert fake_tools()["yosys"] == 1 and fake_tools()["nextpnr-ecp5"] == 1
    # another nextpnr option: the netlist is reused, nextpnr runs
    r2 = build_core(MINI, out, device="LFE5U-25F", seed=2, quiet=True)
    assert fake_tools()["yosys"] == 1 and fake_tools()["nextpnr-ecp5"] == 2 and r2.seed == 2
    r3 = build_core(MINI, out, device="LFE5U-25F", seed=2, route=False, quiet=True)
    assert fake_tools()["nextpnr-ecp5"] == 3 and not r3.routed and "no-route" in r3.status
    # another design: yosys runs again
    build_core(MINI.replace(T1=9), out, device="LFE5U-25F", quiet=True)
    assert fake_tools()["yosys"] == 2 and fake_tools()["nextpnr-ecp5"] == 4


def test_core_build_timeout_and_overflow(tmp_path, fake_tools, monkeypatch):
    out = tmp_path / "core"
    monkeypatch.setenv("FAKE_PNR", "sleep")
    r = build_core(MINI, out, timeout=3, quiet=True)
    assert not r.routed and "timeout" in r.status and r.fmax_mhz == 33.3 and r.times_s["nextpnr_s"] >= 3
    assert BuildReport.load(out / "report.json") == r and not (out / "report.inputs.sha256").exists()
    monkeypatch.setenv("FAKE_PNR", "overflow")
    with pytest.raises(DoesNotFit, match=r"'mini' does not fit LFE5U-85F after synthesis: nextpnr found "
                                         r"DP16KD 300 of 208"):
        build_core(MINI, out, quiet=True)
    assert not (out / "report.json").exists() and (out / "nextpnr.log").exists()
    assert fake_tools()["nextpnr-ecp5"] == 2          # a timed-out report is not reused


def test_board_build_reuses_earlier_work(tmp_path, fake_tools):
    out = tmp_path / "board"
    r1 = build_board("ulx3s-85f", MINI, out, quiet=True)
    assert fake_tools() == {"yosys": 1, "nextpnr-ecp5": 1, "nextpnr-ice40": 0, "ecppack": 1}
    assert (r1.kind, r1.board, r1.target_mhz, r1.fmax_mhz, r1.bitstream, r1.bitstream_bytes) == (
        "board", "ulx3s-85f", 100.0, 123.45, "top.bit", len(b"bitstream"))
    assert r1.uart["divisor"] == 33 and r1.clock["pll"]["primitive"] == "EHXPLLL"
    assert r1.precheck["link"] and r1.precheck["totals"]["link_blocks"] > 0
    # the digest the board's INFO reports: the elaborated fields only, the same for every seed
    assert r1.config_digest == build.config_digest(MINI) == build.config_digest(MINI.replace(seed=9, name="m"))
    assert r1.config_digest["crc32"] == f"{config_crc(MINI):08x}"
    assert build.config_digest(MINI.replace(T1=MINI.T1 + 1)) != r1.config_digest
    assert (out / "top.bit").read_bytes() == b"bitstream" and BuildReport.load(out / "report.json") == r1
    assert sorted(p.name for p in (out / "_work").iterdir()) == ["top.json", "yosys_input.sha256", "yosys_stat.json"]
    assert build_board("ulx3s-85f", MINI, out, quiet=True) == r1
    assert fake_tools() == {"yosys": 1, "nextpnr-ecp5": 1, "nextpnr-ice40": 0, "ecppack": 1}
    (out / "top.bit").unlink()                       # a report whose bitstream is gone is not reused
    build_board("ulx3s-85f", MINI, out, quiet=True)
    assert fake_tools() == {"yosys": 1, "nextpnr-ecp5": 2, "nextpnr-ice40": 0, "ecppack": 2}
    r4 = build_board("ulx3s-85f", MINI, out, do_pack=False, router="router2", quiet=True)
    assert r4.bitstream is None and r4.tools["router"] == "router2" and fake_tools()["ecppack"] == 2


def test_cli_build_core_only(tmp_path, fake_tools, capsys):
    from eqfpga.tools.cli import main
    cfg = tmp_path / "mini.json"
    cfg.write_text(MINI.to_json())
    assert main(["build", "--core-only", "--config", str(cfg), "--device", "LFE5U-45F", "--clock-mhz", "50",
                 "--seed", "3", "--no-route", "--out", str(tmp_path / "c")]) == 0
    r = BuildReport.load(tmp_path / "c" / "report.json")
    assert (r.kind, r.device, r.target_mhz, r.seed, r.routed) == ("core", "LFE5U-45F", 50.0, 3, False)
    assert "Fmax (core clock)" in capsys.readouterr().out
    assert main(["build", "--config", str(cfg)]) == 2
    assert main(["build", "--board", "ulx3s-85f", "--core-only", "--config", str(cfg)]) == 2
    assert main(["build", "--board", "ulx3s-85f", "--device", "LFE5U-25F", "--config", str(cfg)]) == 2
    assert "--device is for --core-only builds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["synth", "--config", str(cfg)])            # replaced by build --core-only


# ---- a real place and route (the `boards` extra) ----------------------------------------------
@pytest.mark.slow      # `make test-all` installs the YoWASP tools it needs (ToolMissing says so otherwise)
def test_real_core_place_and_route(tmp_path, monkeypatch):
    for env in tools.TOOL_ENV.values():
        monkeypatch.delenv(env, raising=False)
    out = tmp_path / "mini"
    r = build_core(MINI, out, device="LFE5U-25F", timeout=3000, quiet=True)
    assert r.routed and r.status == "routed" and r.fmax_mhz > 5
    assert r.used("LUT4") > 0 and r.used("TRELLIS_FF") >= r.wrapper["in_bits"] + r.wrapper["out_bits"]
    assert r.used("MULT18X18D") >= estimate(MINI, "ecp5").dsp_blocks   # yosys may split a product further
    assert r.critical_path["delay_ns"] > 0 and r.yosys_cells["LUT4"] == r.used("LUT4")
    monkeypatch.setattr(build, "run_tool", lambda *a, **k: pytest.fail("a tool ran again"))
    assert build_core(MINI, out, device="LFE5U-25F", timeout=3000, quiet=True) == r


def _broadcast_flip_flops(tmp_path, script, used=8):
    """TRELLIS_FFs of a 16-lane, 8-bit ``Broadcast`` whose outputs each lane registers apart (the
    low ``used`` bits of them)."""
    from amaranth.back import rtlil
    from amaranth.hdl import Module, Signal

    from eqfpga.hdl.trees import Broadcast

    m = Module()
    m.submodules.bc = bc = Broadcast(8, 16, leaf=1)
    x = [Signal(8, name=f"x{p}") for p in range(16)]
    o = [Signal(8, name=f"o{p}") for p in range(16)]
    m.d.sync += [o[p].eq(bc.o[p][:used] ^ x[p]) for p in range(16)]
    (tmp_path / "bc.il").write_text(rtlil.convert(m, ports=[bc.i, *x, *o]))
    stat = tmp_path / "stat.json"
    run_tool(find_tool("yosys") + ["-q", "-p", f"read_rtlil bc.il; {script}; synth_ecp5 -top top; "
                                   f"tee -q -o {stat.name} stat -json"], tmp_path, "yosys.log")
    return json.loads(stat.read_text())["design"]["num_cells_by_type"]["TRELLIS_FF"]


@pytest.mark.slow      # the YoWASP yosys (`make test-all`); the builtin one has no setattr
def test_board_flow_keeps_broadcast_registers_apart(tmp_path):
    """The tree has two levels (2 and 16 registers of 8 bits), then the lanes' own 16. Without
    KEEP_APART yosys folds each level into one register (all 16 lanes read one); with it all stay."""
    from eqfpga.hdl.plan import broadcast_levels
    assert broadcast_levels(16, leaf=1) == 2
    assert _broadcast_flip_flops(tmp_path, "proc") == 8 * (1 + 1 + 16)
    assert _broadcast_flip_flops(tmp_path, build.KEEP_APART) == 8 * (2 + 16 + 16)
    # bits no lane reads are removed before they are kept (lanes keep 8 bits: o = x ^ 0)
    assert _broadcast_flip_flops(tmp_path, build.KEEP_APART, used=3) == 3 * (2 + 16) + 8 * 16


@pytest.mark.parametrize("board", ["ulx3s-85f", "icebreaker"])
def test_board_commands_match_amaranths_build_script(board):
    """nextpnr and the packer get the device, package and file options Amaranth's own script gives them."""
    import shlex

    from eqfpga.boards.top import BOARD_TOP
    b = resolve_board(board)
    plan = b.platform().prepare(BoardTop(MINI, b), name=BOARD_TOP)
    lines = [shlex.split(x) for x in plan.files[f"build_{BOARD_TOP}.sh"].splitlines() if x.startswith('"$')]
    script_pnr, script_pack = lines[1][1:], lines[2][1:]
    pnr, pack, bit, constraints = build._board_cmds(b, b.part, ["nextpnr"], ["pack"], 45.0, 1, None)
    for opt, value in zip(script_pnr, script_pnr[1:] + [""]):
        if opt.startswith("--") and opt not in ("--quiet", "--log"):
            assert opt in pnr, opt
            if not value.startswith("--") and value:
                assert pnr[pnr.index(opt) + 1] == value, opt
    assert [a for a in script_pack if a != "--svf" and not a.endswith(".svf")] == pack[1:]
    assert bit in pack and constraints in pnr


def test_default_out_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("EQFPGA_BUILD_DIR", str(tmp_path / "b"))
    assert build.default_out_dir(MINI, board="ulx3s-85f") == tmp_path / "b" / "ulx3s-85f-mini"
    assert build.default_out_dir(MINI, board="amaranth_boards.icestick:ICEStickPlatform") == \
        tmp_path / "b" / "amaranth_boards.icestick_ICEStickPlatform-mini"
    assert build.default_out_dir(MINI, device="LFE5U-25F") == tmp_path / "b" / "core" / "LFE5U-25F-mini"


def test_every_state_machine_may_be_recoded_one_hot():
    """boards.build.FSM_NAMES lists every ``m.FSM(name=...)`` of the gateware: a new state machine
    that is not listed keeps its init value, and yosys leaves it binary-coded (a decoder per state)."""
    import re
    hdl = Path(build.__file__).resolve().parents[1] / "hdl"
    names = {n for f in hdl.glob("*.py") for n in re.findall(r'm\.FSM\(name="(\w+)"', f.read_text())}
    assert names and names == set(build.FSM_NAMES)


@pytest.mark.slow      # the YoWASP yosys (`make test-all`); the builtin one has no setattr
def test_board_flow_recodes_the_controller_one_hot(tmp_path):
    """With ONE_HOT yosys extracts the controller's state machine and recodes it one-hot."""
    from amaranth.back import rtlil

    from eqfpga.hdl.controller import Controller
    from eqfpga.hdl.plan import Plan
    (tmp_path / "ctrl.il").write_text(rtlil.convert(Controller(Plan(MINI), train=True, label_bits=2, jw=4),
                                                    name="ctrl"))
    for script, one_hot in (("proc", False), (f"proc; {build.ONE_HOT}", True)):
        run_tool(find_tool("yosys") + ["-p", f"read_rtlil ctrl.il; {script}; synth_ecp5 -top ctrl"],
                 tmp_path, "yosys.log")
        log = (tmp_path / "yosys.log").read_text()
        assert ("mapping auto encoding to `one-hot`" in log) == one_hot


def _cell(t, **pins):
    dirs = {"Q": "output", "Z": "output", "F": "output", "S0": "output", "COUT": "output"}
    return {"type": t, "port_directions": {p: dirs.get(p, "input") for p in pins},
            "connections": {p: v for p, v in pins.items()}}


def test_logic_levels_of_a_netlist(tmp_path):
    """Two registers with two LUTs between them, a carry chain of three cells, an input: the levels
    count what needs routing (a LUT, a chain's entry), the chain's further cells little."""
    from eqfpga.boards.levels import load, report
    cells = {
        "a_ff": _cell("TRELLIS_FF", CLK=[1], DI=[9], Q=[2]),
        "l1": _cell("LUT4", A=[2], B=[3], Z=[4]),
        "l2": _cell("LUT4", A=[4], Z=[5]),
        "b_ff": _cell("TRELLIS_FF", CLK=[1], DI=[5], CE=[3], Q=[6]),
        "c1": _cell("CCU2C", A0=[6], CIN=[0], COUT=[7], S0=[10]),
        "c2": _cell("CCU2C", CIN=[7], COUT=[8], S0=[11]),
        "c3": _cell("CCU2C", CIN=[8], S0=[12]),
        "c_ff": _cell("TRELLIS_FF", CLK=[1], DI=[12], Q=[13]),
    }
    names = {"clk": [1], "a": [2], "en": [3], "b": [6], "c": [13], "carry": [7, 8], "sum": [10, 11, 12]}
    net = {"modules": {"top": {"attributes": {"top": 1}, "cells": cells,
                               "netnames": {n: {"bits": b} for n, b in names.items()}}}}
    path = tmp_path / "top.json"
    path.write_text(json.dumps(net))
    paths = {(p.start, p.end, p.pin): p.levels for p in load(path).paths()}
    assert paths[("a", "b", "TRELLIS_FF.DI")] == 2.0
    assert paths[("en", "b", "TRELLIS_FF.CE")] == 0.0
    assert abs(paths[("b", "c", "TRELLIS_FF.DI")] - 1.3) < 1e-9
    chain = load(path).into("b")["DI"][1]
    assert chain[0] == "start: a" and len(chain) == 3
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable yosys JSON netlist"):
        report(path)


@pytest.mark.slow      # yosys synth_ecp5 of two lanes (YoWASP, `make test-all`)
def test_lane_stat_synthesises_a_hashing_and_a_sharing_lane():
    from eqfpga.boards.lane_stat import lane_stat
    cfg = load_config("tiny").replace(parallelism=4, fixed={"update_rounding": "stochastic", "weight_bits": 16,
                                                             "weight_frac": 12, "bias_bits": 16, "bias_frac": 6,
                                                             "update_bits": 10, "acc_bits": 40})
    st = lane_stat(cfg)
    assert st["hash_share"] == 4
    a, b, mean = (st["lanes"][k] for k in ("hashing lane 0", "sharing lane 1", "mean of 4 lanes"))
    # the hash pipeline (8 registered rounds of 32 bits) is in the hashing lane only
    assert a["TRELLIS_FF"] - b["TRELLIS_FF"] >= 8 * 32
    assert a["MULT18X18D"] == b["MULT18X18D"] == 1
    assert b["LUT4"] < mean["LUT4"] < a["LUT4"]
    from eqfpga.boards.lane_stat import synth_lane
    with pytest.raises(ValueError, match="lane 4 does not exist"):
        synth_lane(cfg, 4, Path("/tmp/never"))
