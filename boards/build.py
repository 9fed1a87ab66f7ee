"""Bitstreams for boards: pre-check, Amaranth platform files, yosys, nextpnr, pack, report.

``build_board(board, cfg, out_dir)`` (the API under ``eqfpga build``):

1. resolves the board (``eqfpga.boards.platforms``) and plans the clock: PLL dividers, achieved
   frequency, UART divisor and baud error (``eqfpga.boards.top``);
2. **pre-check**, before any tool runs (:func:`precheck_board`): refuses with ``DoesNotFit``, naming
   the resource and the numbers, a config whose block RAM, multipliers or estimated logic cannot fit
   the board's device (ECP5: DP16KD / MULT18X18D / LUT4; iCE40: EBR / SB_MAC16 / logic cells);
3. elaborates :class:`~eqfpga.boards.top.BoardTop` with the amaranth-boards platform
   (``platform.prepare``: RTLIL, yosys script, LPF/PCF constraints with the PLL clock's frequency)
   and extracts the files into ``out_dir/_work``;
4. runs the steps of Amaranth's build script one by one so that each is timed: yosys
   (``synth_ecp5``, or ``synth_ice40 -dsp -spram``), nextpnr (``--timing-allow-fail``, ``--seed``,
   ``--freq`` = the achieved PLL frequency, ``--report``), ecppack / icepack;
5. reads the resources and the Fmax of the PLL clock domain from nextpnr's report JSON, writes
   ``out_dir/report.json`` and keeps only the bitstream, the report and the logs in ``out_dir``.

Tools: ``$YOSYS``, ``$NEXTPNR_ECP5``, ``$NEXTPNR_ICE40``, ``$ECPPACK``, ``$ICEPACK`` when set, else
native tools on PATH (faster), else the YoWASP builds of ``pip install -e .[boards]``. The YoWASP
tools see a private /tmp, so every tool runs inside the work folder with relative paths.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path

from eqfpga.golden.config import EPConfig, load_config

from .platforms import Board, resolve_board
from .synth import DoesNotFit, ToolMissing, _critical_path, dp16kd_blocks, find_tool, memory_map
from .synth import precheck as ecp5_precheck

__all__ = ["build_board", "print_report", "format_report", "precheck_board", "DoesNotFit", "ToolMissing",
           "find_tool"]

TOP = "top"
# An 8N1 receiver sampling mid-bit tolerates a few percent between the two ends; 2.5% on our side.
MAX_BAUD_ERROR_PCT = 2.5

# ---- tools --------------------------------------------------------------------------------------
def _run(cmd, cwd, log, timeout=None):
    t0 = time.monotonic()
    with open(Path(cwd) / log, "w") as fh:
        try:
            p = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{Path(cmd[0]).name} did not finish in {timeout} s (log: {Path(cwd) / log})")
    dt = time.monotonic() - t0
    if p.returncode != 0:
        tail = (Path(cwd) / log).read_text(errors="replace").splitlines()[-20:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed (status {p.returncode}); {Path(cwd) / log} ends:\n"
                           + "\n".join(tail))
    return round(dt, 1)


# ---- pre-check ----------------------------------------------------------------------------------
# What the serial link (hdl/link.py, docs/protocol.md) adds to the core: the payload buffer (two
# banks of MAX_PAYLOAD bytes), the receive FIFO, the config JSON ROM; its logic (UART, CRC-32, the
# protocol engine) is in the logic fit below.


def _link_memories(cfg: EPConfig) -> dict:
    """{name: (width, depth)} of the link's memories (payload buffer, receive FIFO, config ROM)."""
    import inspect

    from eqfpga.hdl.link import LinkedCore
    from eqfpga.hdl.protocol import MAX_PAYLOAD, config_json
    fifo = inspect.signature(LinkedCore).parameters["rx_fifo_depth"].default
    return {"link_buffer": (8, 2 * MAX_PAYLOAD), "link_rx_fifo": (8, fifo),
            "link_config_rom": (8, len(config_json(cfg)))}


# iCE40 EBR aspect ratios (width, depth); 256 x 16 has a per-bit write mask. yosys maps the core's
# memories to EBR (iCE40 has no LUT RAM) except the shallowest (depth 2 in tiny), which go to logic.
EBR_MODES = ((16, 256), (8, 512), (4, 1024), (2, 2048))
ICE40_LOGIC_MEMORY_DEPTH = 4


def ebr_blocks(width: int, depth: int, granularity: int | None = None) -> int:
    """Fewest iCE40 EBRs (4 kbit) for a simple dual-port memory; lanes written apart need the
    16-bit mode's write mask or blocks that stay inside one lane."""
    g = granularity or width
    best = None
    for w, d in EBR_MODES:
        if g == width or w == 16:
            across = math.ceil(width / w)
        else:
            across = math.ceil(width / g) * math.ceil(g / w)
        n = across * math.ceil(depth / d)
        best = n if best is None else min(best, n)
    return best


def _mult_widths(cfg: EPConfig) -> tuple:
    f = cfg.fixed
    sw = f.state_frac + 1
    return (f.weight_bits, sw), (sw, max(sw, f.input_frac))


def _lane_cost(cfg: EPConfig) -> int:
    f = cfg.fixed
    lane = 18 * f.acc_bits + 20 * f.weight_bits + 10 * f.bias_bits + 10 * (f.state_frac + 1)
    if "stochastic" in (f.update_rounding, f.state_rounding):
        lane += 150                                  # the ARX hash rounds of each lane
    return lane


# Logic of the whole top (core + link) = base + P * lane cost, fitted on the measured builds
# (docs/boards.md): iCE40 logic cells (nextpnr ICESTORM_LC), ECP5 TRELLIS_COMB (LUT4 + carry
# halves + LUT RAM). Good to ~5%: enough to refuse the hopeless cases before any tool runs.
LOGIC_FIT = {"ice40": (5310, 1.38), "ecp5": (3300, 1.24)}


def _logic_estimate(cfg: EPConfig, family: str, train: bool = True) -> int:
    base, k = LOGIC_FIT[family]
    return int(base + k * cfg.parallelism * _lane_cost(cfg) * (1 if train else 0.6))


def precheck_board(cfg, board, *, train: bool = True) -> dict:
    """Estimate what ``cfg`` needs on ``board``; raise DoesNotFit naming the resource and numbers."""
    cfg = load_config(cfg)
    b = board if isinstance(board, Board) else resolve_board(board)
    name = f"config {cfg.name!r} ({'-'.join(map(str, cfg.sizes))}, P={cfg.parallelism})"
    where = f"{b.name} ({b.device})"
    logic = _logic_estimate(cfg, b.family, train)
    if b.family == "ecp5":
        try:
            est = ecp5_precheck(cfg, b.device, train=train)
        except DoesNotFit as e:
            raise DoesNotFit(str(e).replace(f"does not fit {b.device}", f"does not fit {where}")) from None
        link_blocks = sum(dp16kd_blocks(w, d) for w, d in _link_memories(cfg).values())
        est = dict(est, link_dp16kd_min=link_blocks, trellis_comb_estimate=logic, lut4_available=b.resources["LUT4"])
        if est["weight_dp16kd_min"] + link_blocks > b.resources["DP16KD"]:
            raise DoesNotFit(f"{name} does not fit {where}: its weight memories need at least "
                             f"{est['weight_dp16kd_min']} DP16KD and the link's buffer {link_blocks}, of "
                             f"{b.resources['DP16KD']}")
        if logic > b.resources["LUT4"]:
            raise DoesNotFit(f"{name} does not fit {where}: its logic is estimated at {logic:,} LUT4 (TRELLIS_COMB) "
                             f"and the device has {b.resources['LUT4']:,}")
        return est
    # iCE40
    res = b.resources
    mems = {}
    for k, (w, d, g) in memory_map(cfg).items():
        n = 0 if d <= ICE40_LOGIC_MEMORY_DEPTH else ebr_blocks(w, d, g)
        mems[k] = {"width": w, "depth": d, "bits": w * d, "ebr_min": n}
    link_ebr = sum(ebr_blocks(w, d) for w, d in _link_memories(cfg).values())
    ebr = sum(v["ebr_min"] for v in mems.values())
    (ma, mb), (ua, ub) = _mult_widths(cfg)
    mac = math.ceil(ma / 16) * math.ceil(mb / 16)
    upd = math.ceil(ua / 16) * math.ceil(ub / 16)
    P = cfg.parallelism
    mults = P * mac + (2 * P * upd if train else 0)
    # yosys' synth_ice40 -dsp maps every multiplier to an SB_MAC16, however many the device has
    w_ebr = sum(v["ebr_min"] for k, v in mems.items() if k.startswith("W"))
    est = {"device": b.device, "memories": mems, "weight_ebr_min": w_ebr, "all_memories_ebr_min": ebr,
           "link_ebr_min": link_ebr, "ebr_available": res["EBR"], "sb_mac16_estimate": mults,
           "sb_mac16_available": res["DSP"], "lc_estimate": logic,
           "lc_available": res["LC"],
           "note": "the core's memories are simple dual-port (one read, one write port): yosys maps them "
                   "to EBR, never to the single-port SPRAM"}
    why = []
    if w_ebr + link_ebr > res["EBR"]:
        detail = ", ".join(f"{k} {v['width']}x{v['depth']} -> {v['ebr_min']}"
                           for k, v in mems.items() if k.startswith("W"))
        why.append(f"its weight memories need at least {w_ebr} EBR (4 kbit block RAMs: {detail}) plus "
                   f"{link_ebr} for the link's buffer, FIFO and config ROM, and the device has {res['EBR']} (its "
                   f"{res['SPRAM']} SPRAM banks cannot hold them: the core's memories are dual-port)")
    elif ebr + link_ebr > res["EBR"]:
        detail = ", ".join(f"{k} -> {v['ebr_min']}" for k, v in mems.items())
        why.append(f"its memories need at least {ebr} EBR ({detail}) plus {link_ebr} for the link's buffer, "
                   f"FIFO and config ROM, and the device has {res['EBR']}")
    if mults > res["DSP"]:
        why.append(f"it needs {mults} SB_MAC16 ({P} MAC" + (f" + {2 * P} update" if train else "") +
                   f" multipliers; yosys -dsp maps every one to a DSP) and the device has {res['DSP']}")
    if logic > res["LC"]:
        why.append(f"its logic (core and link) is estimated at {logic:,} logic cells and the device has "
                   f"{res['LC']:,}")
    if why:
        raise DoesNotFit(f"{name} does not fit {where}: " + "; ".join(why))
    return est


# ---- the flow -----------------------------------------------------------------------------------
def config_digest(cfg: EPConfig) -> dict:
    """sha256 (16 hex digits) and CRC-32 of the canonical config JSON; the CRC is the one the board
    reports in INFO (``config_crc``), so a host can match a board to its build report."""
    from eqfpga.hdl.protocol import config_json
    js = config_json(cfg)
    return {"sha256": hashlib.sha256(js).hexdigest()[:16], "crc32": f"{zlib.crc32(js):08x}"}


def _ecp5_cmds(platform, tools, target_mhz, seed):
    dev = platform._nextpnr_device_options[platform.device]
    pkg = platform._nextpnr_package_options[platform.package].upper()
    pnr = tools["nextpnr"] + ["--quiet", "--log", "nextpnr.log", dev, "--package", pkg, "--speed", str(platform.speed),
                              "--json", f"{TOP}.json", "--lpf", f"{TOP}.lpf", "--textcfg", f"{TOP}.config",
                              "--report", "nextpnr_report.json", "--timing-allow-fail", "--seed", str(seed),
                              "--freq", f"{target_mhz:.3f}"]
    pack = tools["pack"] + ["--compress", "--input", f"{TOP}.config", "--bit", f"{TOP}.bit"]
    return pnr, pack, f"{TOP}.bit"


def _ice40_cmds(platform, tools, target_mhz, seed):
    dev = platform._nextpnr_device_options[platform.device]
    pkg = platform.package.lower() + platform._nextpnr_package_options.get(platform.device, "")
    pnr = tools["nextpnr"] + ["--quiet", "--log", "nextpnr.log", dev, "--package", pkg,
                              "--json", f"{TOP}.json", "--pcf", f"{TOP}.pcf", "--asc", f"{TOP}.asc",
                              "--report", "nextpnr_report.json", "--timing-allow-fail", "--seed", str(seed),
                              "--freq", f"{target_mhz:.3f}"]
    pack = tools["pack"] + [f"{TOP}.asc", f"{TOP}.bin"]
    return pnr, pack, f"{TOP}.bin"


def exact_clock(board: Board, baud: int, near_hz: float) -> float | None:
    """The clock nearest ``near_hz`` that the board's PLL makes exactly and that is a multiple of
    ``baud`` (at least 4 cycles per bit), or None."""
    from .top import PLLError, plan_clock
    best = None
    for k in range(4, max(5, math.ceil(1.5 * near_hz / baud))):
        f = baud * k
        try:
            if abs(plan_clock(board, f)["f_out_hz"] - f) < 1 and (best is None or abs(f - near_hz) < abs(best - near_hz)):
                best = f
        except PLLError:
            continue
    return best


RESOURCE_BELS = {
    "ecp5": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "EHXPLLL", "TRELLIS_IO"),
    "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "ICESTORM_PLL", "SB_IO", "SB_GB"),
}


def build_board(board, cfg, out_dir, *, clock_hz: float | None = None, baud: int | None = None,
                seed: int = 1, do_pack: bool = True, timeout: float | None = None, keep_work: bool = False,
                force: bool = False, router: str | None = None, quiet: bool = False) -> dict:
    """Pre-check, synthesise, place and route, pack; write ``out_dir/report.json`` and return it.

    ``clock_hz``: the target clock (default: the board's); the PLL's achieved frequency is what the
    UART divisor, the core and nextpnr's constraint use. ``baud``: default the board's.
    ``router``: nextpnr's router (``router1``, its default, or ``router2``, which copes better with
    congested large designs). ``timeout``: seconds per tool; if nextpnr runs out of time the report
    is still written (no bitstream, ``routed`` false, Fmax from the post-placement estimate of
    nextpnr's log). ``keep_work``: keep the generated files (RTLIL, netlist) in ``out_dir/_work``. ``force``: build even when the pre-check refuses (the refusal is kept in
    the report). Raises DoesNotFit (before any tool runs), ToolMissing, ValueError (clock
    or baud impossible), RuntimeError / TimeoutError (a tool failed).
    """
    from .top import BoardTop, plan_clock, uart_divisor
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    t_all = time.monotonic()
    cfg = load_config(cfg)
    b = board if isinstance(board, Board) else resolve_board(board)
    clock = plan_clock(b, float(clock_hz if clock_hz is not None else b.default_clock_hz))
    f_hz, baud = int(round(clock["f_out_hz"])), int(baud if baud is not None else b.default_baud)
    divisor, err = uart_divisor(f_hz, baud)
    if abs(err) > MAX_BAUD_ERROR_PCT:
        raise ValueError(f"baud {baud} from a {f_hz / 1e6:g} MHz clock: divisor {divisor} gives "
                         f"{f_hz / divisor:,.0f} baud, {err:+.2f}% off (the limit is {MAX_BAUD_ERROR_PCT}%); "
                         f"choose a clock that is a multiple of the baud rate"
                         + (f" (e.g. --clock-mhz {near / 1e6:g})" if (near := exact_clock(b, baud, f_hz)) else ""))
    try:
        est = precheck_board(cfg, b)
    except DoesNotFit as e:
        if not force:
            raise
        est = {"refused_but_forced": str(e)}
        if not quiet:
            print(f"eqfpga build: warning (force=True): {e}", flush=True)
    fam = b.family
    tools = {"yosys": find_tool("yosys"), "nextpnr": find_tool(f"nextpnr-{fam}"),
             "pack": find_tool("ecppack" if fam == "ecp5" else "icepack")}

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "_work"
    if work.exists():
        shutil.rmtree(work)
    times = {}
    t0 = time.monotonic()
    top = BoardTop(cfg, b, clock_hz=clock_hz, baud=baud)
    platform = b.platform()
    overrides = {"script_after_synth": "tee -q -o yosys_stat.json stat -json"}
    if fam == "ice40":
        overrides["synth_opts"] = "-dsp -spram"
    plan = platform.prepare(top, name=TOP, **overrides)
    plan.extract(str(work))
    times["elaborate_s"] = round(time.monotonic() - t0, 1)

    target_mhz = top.clock_hz / 1e6
    pnr, pack, bitname = (_ecp5_cmds if fam == "ecp5" else _ice40_cmds)(platform, tools, target_mhz, seed)
    if router:
        pnr += ["--router", router]
    if not quiet:
        print(f"eqfpga build: {cfg.name} on {b.name} ({b.device}), clock {target_mhz:g} MHz, "
              f"baud {top.baud} (divisor {top.divisor}); work folder {work}", flush=True)
    times["yosys_s"] = _run(tools["yosys"] + ["-q", "-l", "yosys.log", f"{TOP}.ys"], work, "yosys.stdout", timeout)
    if not quiet:
        print(f"  yosys {times['yosys_s']} s", flush=True)
    routed = True
    t1 = time.monotonic()
    (work / "nextpnr_report.json").unlink(missing_ok=True)
    try:
        times["nextpnr_s"] = _run(pnr, work, "nextpnr.stdout", timeout)
    except TimeoutError:
        routed = False                      # report what placement gave: the estimate of the log
        times["nextpnr_s"] = round(time.monotonic() - t1, 1)
        if not quiet:
            print(f"  nextpnr stopped after {timeout} s: no bitstream; Fmax is nextpnr's estimate so far",
                  flush=True)
    except RuntimeError:
        log = (work / "nextpnr.log").read_text(errors="replace") if (work / "nextpnr.log").exists() else ""
        over = [(bel, int(u), int(a)) for bel, u, a in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log)
                if int(u) > int(a)]
        if not over:
            raise
        for f in ("yosys.log", "nextpnr.log"):
            shutil.copy2(work / f, out / f)
        detail = ", ".join(f"{bel} {u:,} of {a:,}" for bel, u, a in over)
        (out / "report.json").write_text(json.dumps({
            "board": b.name, "device": b.device, "config": {"name": cfg.name, **config_digest(cfg)},
            "fits": False, "over": {bel: {"used": u, "available": a} for bel, u, a in over},
            "precheck": est, "times_s": times}, indent=2, default=str))
        raise DoesNotFit(f"config {cfg.name!r} does not fit {b.name} ({b.device}) after synthesis: "
                         f"nextpnr found {detail} (logs in {out})") from None
    if not quiet and routed:
        print(f"  nextpnr {times['nextpnr_s']} s", flush=True)
    do_pack = do_pack and routed
    if do_pack:
        times["pack_s"] = _run(pack, work, "pack.log", timeout)

    rp = work / "nextpnr_report.json"
    rep = json.loads(rp.read_text()) if rp.exists() else {}
    log = (work / "nextpnr.log").read_text(errors="replace") if (work / "nextpnr.log").exists() else ""
    util = rep.get("utilization") or {
        bel: {"used": int(u), "available": int(a)}
        for bel, u, a in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log)}
    fmax_all = rep.get("fmax") or {
        clk: {"achieved": float(f), "constraint": float(c)}
        for clk, f, c in re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz",
                                    log)}
    # the PLL clock domain: the constrained net at the achieved PLL frequency
    dom = {k: v for k, v in fmax_all.items() if abs(v.get("constraint", 0) - target_mhz) < 0.01 * target_mhz}
    dom = dom or fmax_all
    fmax = min((v["achieved"] for v in dom.values()), default=None)
    stat = json.loads((work / "yosys_stat.json").read_text()) if (work / "yosys_stat.json").exists() else {}
    cells = (stat.get("design") or {}).get("num_cells_by_type") or {}

    resources = {}
    for bel in RESOURCE_BELS[fam]:
        u = util.get(bel)
        if u is not None:
            resources[bel] = {"used": u.get("used"), "available": u.get("available")}
    if fam == "ecp5":
        resources = {"LUT4": {"used": cells.get("LUT4"), "available": b.resources["LUT4"],
                              "note": "yosys LUT4 cells; TRELLIS_COMB also counts carry halves and LUT RAM"},
                     **resources}

    bit = out / bitname
    if do_pack:
        shutil.copy2(work / bitname, bit)
    for f in ("yosys.log", "nextpnr.log", "nextpnr_report.json", "pack.log"):
        if (work / f).exists():
            shutil.copy2(work / f, out / f)
    if not keep_work:
        shutil.rmtree(work)

    clk = top.clock
    pll = clk["pll"]
    times["total_s"] = round(time.monotonic() - t_all, 1)
    report = {
        "board": b.name, "family": fam, "device": b.device, "package": b.package,
        "config": {"name": cfg.name, "sizes": list(cfg.sizes), "parallelism": cfg.parallelism,
                   **config_digest(cfg)},
        "clock": {"oscillator_mhz": b.osc_hz / 1e6, "target_mhz": top.target_hz / 1e6,
                  "achieved_mhz": round(clk["f_out_hz"] / 1e6, 6), "error_ppm": clk["error_ppm"],
                  "pll": pll, "note": clk.get("note")},
        "clock_mhz": round(clk["f_out_hz"] / 1e6, 6),
        "uart": {"baud": top.baud, "divisor": top.divisor, "actual_baud": round(top.clock_hz / top.divisor, 1),
                 "error_pct": round(top.baud_error_pct, 3), "usb_uart": b.usb_uart},
        "routed": routed,
        "nextpnr_status": "routed" if routed else (f"stopped after {timeout} s (timeout) before routing finished: "
                                                   "Fmax is the latest estimate of nextpnr's log (post-placement)"),
        "fmax_mhz": round(fmax, 2) if fmax is not None else None,
        "timing_met": fmax is not None and fmax >= target_mhz,
        "fmax_by_clock": fmax_all,
        "resources": resources,
        "yosys_cells": cells,
        "critical_path": _critical_path(rep),
        "precheck": est,
        "times_s": times,
        "tools": {k: v[0] for k, v in tools.items()},
        "seed": seed, "router": router or "router1 (nextpnr default)",
        "bitstream": str(bit) if do_pack else None,
        "bitstream_bytes": bit.stat().st_size if do_pack else None,
        "program": b.program.format(bit=bit.name),
        "logs": [f for f in ("yosys.log", "nextpnr.log", "nextpnr_report.json", "pack.log") if (out / f).exists()],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def format_report(r: dict) -> str:
    c = r["config"]
    rows = [("board", f"{r['board']}: {r['device']} {r['package']}"),
            ("config", f"{c['name']} {'-'.join(map(str, c['sizes']))} P={c['parallelism']} (sha256 {c['sha256']})")]
    ck = r["clock"]
    pll = ck["pll"]
    how = (f"{pll['primitive']} from {ck['oscillator_mhz']:g} MHz" if pll else "oscillator, no PLL")
    rows.append(("clock", f"{ck['achieved_mhz']:g} MHz (target {ck['target_mhz']:g}, {how})"))
    u = r["uart"]
    rows.append(("uart", f"{u['baud']:,} baud, divisor {u['divisor']}, error {u['error_pct']:+.2f}%"))
    for k, v in r["resources"].items():
        used, av = v.get("used"), v.get("available")
        pct = f" ({100 * used / av:.1f}%)" if isinstance(used, int) and av else ""
        rows.append((k, f"{used if used is not None else '-':>7} of {av}{pct}"))
    fm = r["fmax_mhz"]
    rows.append(("Fmax (PLL clock)", f"{fm} MHz vs {r['clock_mhz']:g} MHz target: "
                                     f"{'PASS' if r['timing_met'] else 'FAIL'}"
                  + ("" if r.get("routed", True) else " (NOT ROUTED: nextpnr's post-placement estimate)")))
    cp = r.get("critical_path")
    if cp:
        rows.append(("critical path", f"{cp['delay_ns']} ns: {cp['start']} -> {cp['end']}"))
    t = r["times_s"]
    rows.append(("time", ", ".join(f"{k[:-2]} {v} s" for k, v in t.items())))
    if r.get("bitstream"):
        rows.append(("bitstream", f"{r['bitstream']} ({r['bitstream_bytes']:,} bytes)"))
        rows.append(("program", r["program"]))
    n = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{n}}  {v}" for k, v in rows)


def print_report(report: dict) -> None:
    print(format_report(report))
