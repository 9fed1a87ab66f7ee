"""Boards and the bitstream build, without place and route (CI has no YoWASP tools): board names,
PLL dividers, the fit pre-check and its messages, and the board top elaborating for both boards."""
import os

import pytest

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from eqfpga.boards.build import (DoesNotFit, build_board, ebr_blocks, find_tool, format_report,  # noqa: E402
                                 precheck_board)
from eqfpga.boards.platforms import BoardError, resolve_board  # noqa: E402
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
    with pytest.raises(BoardError) as e:
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
    assert "EBR" in msg and "400" in msg and "30" in msg and "SPRAM" in msg


def test_precheck_refuses_tiny_on_icebreaker():
    # measured: 10,499 of 5,280 logic cells, 12 of 8 SB_MAC16 (yosys maps all 12 multipliers to DSPs)
    with pytest.raises(DoesNotFit) as e:
        precheck_board("tiny", "icebreaker")
    msg = str(e.value)
    assert "12 SB_MAC16" in msg and "has 8" in msg and "logic cells" in msg and "5,280" in msg


def test_precheck_accepts():
    est = precheck_board("mnist-1h", "ulx3s-85f")
    assert est["weight_dp16kd_min"] + est["link_dp16kd_min"] <= 208
    assert est["trellis_comb_estimate"] < 83640
    assert precheck_board("tiny", "ulx3s-85f")["mult18x18d_estimate"] <= 156


def test_ebr_blocks():
    assert ebr_blocks(16, 256) == 1
    assert ebr_blocks(8, 4096) == 8                  # 8 x 512 mode
    assert ebr_blocks(18, 784) == 5                  # 4 x 1024 mode, 5 across
    assert ebr_blocks(256, 6272, 16) == 16 * 25      # 16 x 256 mode with its write mask


def test_build_refuses_before_any_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("YOSYS", "/nonexistent/yosys")
    with pytest.raises(DoesNotFit):
        build_board("ulx3s-85f", "mnist-2h", tmp_path / "a")
    with pytest.raises(ValueError, match="baud"):      # 25 MHz / 3 Mbaud: divisor 8, 4.2% off
        build_board("ulx3s-85f", "tiny", tmp_path / "b", clock_hz=25e6)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


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
    r = {"board": "ulx3s-85f", "device": "LFE5U-85F", "package": "BG381",
         "config": {"name": "tiny", "sizes": [12, 7, 3], "parallelism": 4, "sha256": "ab"},
         "clock": {"achieved_mhz": 60.0, "target_mhz": 60.0, "oscillator_mhz": 25.0,
                   "pll": {"primitive": "EHXPLLL"}},
         "clock_mhz": 60.0, "uart": {"baud": 3_000_000, "divisor": 20, "error_pct": 0.0},
         "resources": {"DP16KD": {"used": 3, "available": 208}}, "fmax_mhz": 70.1, "timing_met": True,
         "critical_path": None, "times_s": {"yosys_s": 1.0, "nextpnr_s": 2.0},
         "bitstream": "x/top.bit", "bitstream_bytes": 1000, "program": "openFPGALoader -b ulx3s top.bit"}
    t = format_report(r)
    assert "PASS" in t and "EHXPLLL" in t and "DP16KD" in t and "divisor 20" in t


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


def test_exact_clock_suggestion():
    from eqfpga.boards.build import exact_clock
    assert exact_clock(resolve_board("ulx3s-85f"), 3_000_000, 25e6) == 30e6     # 25 MHz / 5 x 6
    assert exact_clock(resolve_board("icebreaker"), 3_000_000, 12e6) == 12e6     # the oscillator, no PLL
