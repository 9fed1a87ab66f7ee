"""The one tool flow: synthesis, place and route (and a bitstream) for a board or for the core alone.

``build_board(board, cfg, out_dir)`` (``eqfpga build --board``): the serial-linked core with PLL,
reset and LEDs (:class:`~eqfpga.boards.top.BoardTop`) on a board, through to the bitstream.
``build_core(cfg, out_dir)`` (``eqfpga build --core-only``): the core behind the 5-pin serial
wrapper (:class:`~eqfpga.boards.top.SerialWrapper`) on a device, for resource and Fmax studies.

Both go through the same steps:

1. the **pre-check** (:mod:`eqfpga.boards.fit`), before any tool runs: ``DoesNotFit`` names the
   resource and the numbers of a config that cannot fit;
2. the design, into ``out_dir/_work``: the wrapper's Verilog (core), or the RTLIL, yosys script
   and LPF/PCF constraints of the amaranth-boards platform (board);
3. **yosys** (``synth_ecp5``; iCE40 ``synth_ice40 -dsp``, boards also ``-spram``; then ``stat
   -json``), skipped when the netlist of the same design and script is already in ``_work``;
4. **nextpnr** (``--timing-allow-fail --seed S --freq F --report``), skipped when ``out_dir``
   holds a complete report of the same netlist and options (``report.inputs.sha256``): that report
   is returned as it is. A timeout still gives a report (``routed`` false, Fmax from the log's
   post-placement estimate); a device too small after synthesis raises ``DoesNotFit`` with
   nextpnr's numbers;
5. boards: **ecppack / icepack**;
6. the :class:`~eqfpga.boards.report.BuildReport` (``kind`` "core" or "board") in
   ``out_dir/report.json``, with the logs beside it.

Tools are found and run by :mod:`eqfpga.boards.tools` (``$YOSYS``, ``$NEXTPNR_ECP5``, ... override).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import time
from pathlib import Path

from eqfpga.golden.config import EPConfig, load_config
from eqfpga.hdl.resources import estimate
from eqfpga.hdl.trees import NO_MERGE
from eqfpga.sim.paths import build_dir

from . import nextpnr
from .devices import FAMILY_TOOLS, Device
from .devices import device as device_named
from .fit import DoesNotFit, precheck, precheck_board, precheck_record
from .platforms import Board, resolve_board
from .report import FILE_NAME, BuildReport, ReportError, Resource
from .tools import ToolFailed, ToolMissing, ToolTimeout, find_tool, run_tool

__all__ = ["build_core", "build_board", "format_report", "print_report", "default_out_dir", "DoesNotFit",
           "ToolMissing"]

WORK = "_work"
INPUTS_DIGEST = "report.inputs.sha256"      # the netlist and nextpnr options report.json was made from
YOSYS_DIGEST = "yosys_input.sha256"         # the design and script the netlist in _work was made from
STAT = "yosys_stat.json"
# yosys commands before synthesis: the flip-flops behind NO_MERGE wires (the broadcast tree's
# per-lane copies) get ``keep``, so that opt_merge does not fold each level into one register
# flatten and opt_clean first: a broadcast register whose bits no lane reads (a field of the record
# this config does not use, the key of a lane that does not hash) goes, and is not kept.
KEEP_APART = f"proc; flatten; opt_clean; setattr -set keep 1 a:{NO_MERGE} %ci1:+[Q] c:* %i"
# The state registers of the state machines (Amaranth names them ``<fsm>_state``) lose their power-up
# value, so that yosys' fsm pass may recode them one-hot (it leaves a register with an init value
# alone): a state is then one flip-flop, not a decoder. Their reset sets them: the board holds it
# for Plan.drain + 2 cycles after the PLL locks (boards.top.hold_reset_until).
FSM_NAMES = ("ctrl", "exec", "rx", "append", "reply", "sdram")
ONE_HOT = "setattr -unset init " + " ".join(f"w:{name}_state" for name in FSM_NAMES)
BEFORE_SYNTH = f"proc; {ONE_HOT}; {KEEP_APART}"      # ONE_HOT names the wires before flatten renames them
KEPT_LOGS = ("yosys.log", "nextpnr.log", "nextpnr_report.json", "pack.log")
# An 8N1 receiver sampling mid-bit tolerates a few percent between the two ends; 2.5% on our side.
MAX_BAUD_ERROR_PCT = 2.5
# Resources a report lists, by nextpnr BEL (ECP5 also yosys' LUT4 count, first)
RESOURCE_BELS = {
    "ecp5": ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "EHXPLLL", "TRELLIS_IO"),
    "ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_SPRAM", "ICESTORM_PLL", "SB_IO", "SB_GB"),
}


def default_out_dir(cfg: EPConfig, *, board: str | None = None, device: str | None = None) -> Path:
    """``build/<board>-<config>`` for a board, ``build/core/<device>-<config>`` for the core alone
    (under ``eqfpga.sim.paths.build_root()``)."""
    if board is not None:
        return build_dir(f"{board.replace(':', '_')}-{cfg.name}")
    return build_dir("core", f"{device}-{cfg.name}")


# ---- shared steps -------------------------------------------------------------------------------
def _sha256(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _without_source_locations(text: bytes) -> bytes:
    """The design without its source-line attributes (they move when unrelated Python lines do)."""
    text = re.sub(rb'\(\* src = "[^"]*" \*\)', b"", text)                  # Verilog
    return re.sub(rb'(?m)^\s*attribute \\src "[^"]*"\n', b"", text)        # RTLIL


def _synthesise(yosys: list, work: Path, design: str, script: str, args: list, netlist: str,
                timeout) -> tuple[float, bool]:
    """Run yosys unless ``work`` holds the netlist of this design and script; (seconds, reused)."""
    digest = _sha256(_without_source_locations((work / design).read_bytes()), script.encode())
    stamp = work / YOSYS_DIGEST
    if (stamp.exists() and stamp.read_text().strip() == digest and (work / netlist).exists()
            and (work / STAT).exists()):
        return 0.0, True
    stamp.unlink(missing_ok=True)
    seconds = run_tool(yosys + ["-q", "-l", "yosys.log"] + args, work, "yosys.stdout", timeout)
    stamp.write_text(digest + "\n")
    return seconds, False


def _yosys_cells(work: Path) -> dict:
    import json
    stat = json.loads((work / STAT).read_text())
    cells = (stat.get("design") or {}).get("num_cells_by_type") or {}
    if not cells and stat.get("modules"):
        cells = next(iter(stat["modules"].values())).get("num_cells_by_type", {})
    return cells


def _inputs_digest(work: Path, netlist: str, pnr_cmd: list, extra: list, constraints: str | None) -> str:
    parts = [(work / netlist).read_bytes(), "\0".join(pnr_cmd + extra).encode()]
    if constraints:
        parts.append((work / constraints).read_bytes())
    return _sha256(*parts)


def _reusable(out: Path, digest: str) -> BuildReport | None:
    """The earlier report in ``out`` if it was made from the same inputs and is complete."""
    stamp = out / INPUTS_DIGEST
    if not (stamp.exists() and stamp.read_text().strip() == digest):
        return None
    try:
        rep = BuildReport.load(out / FILE_NAME)
    except ReportError:
        return None
    if rep.bitstream and not (out / rep.bitstream).exists():
        return None
    return rep


def _place_and_route(cmd: list, work: Path, out: Path, timeout, where: str) -> tuple[float, bool]:
    """Run nextpnr; (seconds, finished). Not finished: it timed out (the report says so).
    A device too small after synthesis raises DoesNotFit with nextpnr's numbers."""
    (work / nextpnr.REPORT).unlink(missing_ok=True)
    try:
        return run_tool(cmd, work, "nextpnr.stdout", timeout), True
    except ToolTimeout as e:
        return e.seconds, False
    except ToolFailed:
        log = (work / nextpnr.LOG).read_text(errors="replace") if (work / nextpnr.LOG).exists() else ""
        over = nextpnr.overused(log)
        if not over:
            raise
        _keep_logs(work, out)
        detail = ", ".join(f"{bel} {u:,} of {a:,}" for bel, u, a in over)
        raise DoesNotFit(f"{where} after synthesis: nextpnr found {detail} (logs in {out})") from None


def _keep_logs(work: Path, out: Path) -> list:
    kept = []
    for f in KEPT_LOGS:
        if (work / f).exists():
            shutil.copy2(work / f, out / f)
            kept.append(f)
    return kept


def _resources(dev: Device, util: dict, cells: dict) -> dict:
    res = {}
    if dev.family == "ecp5":
        res["LUT4"] = Resource(cells.get("LUT4"), dev.luts,
                               "yosys LUT4 cells; TRELLIS_COMB also counts carry halves and LUT RAM")
    avail = dev.available()
    for bel in RESOURCE_BELS[dev.family]:
        u = util.get(bel)
        if u is not None:
            res[bel] = Resource(u.get("used"), u.get("available", avail.get(bel)))
    return res


def _status(finished: bool, route: bool, timeout) -> str:
    if not finished:
        return (f"nextpnr stopped after {timeout} s (timeout) before it finished: Fmax is the latest "
                "estimate of its log (post-placement), if placement finished")
    return "routed" if route else "placed (--no-route): Fmax is the post-placement estimate"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


# ---- the core alone -----------------------------------------------------------------------------
def _core_pnr_cmd(dev: Device, package: str, clock_mhz: float, seed: int, netlist: str, router: str,
                  route: bool, tool: list) -> tuple[list, str | None, str | None]:
    """nextpnr's command for a core build, and the constraint file (name, text) pinning clk."""
    cmd = tool + ["--quiet", "--log", nextpnr.LOG, dev.nextpnr_flag, "--package", package]
    if dev.speed:
        cmd += ["--speed", dev.speed]
    cmd += ["--freq", f"{clock_mhz:g}", "--json", netlist, "--report", nextpnr.REPORT, "--timing-allow-fail",
            "--seed", str(seed), "--router", router]
    pad = dev.clock_pads.get(package)
    name = text = None
    if dev.family == "ecp5":
        cmd.append("--lpf-allow-unconstrained")
        if pad:
            name, text = "clock.lpf", f'LOCATE COMP "clk" SITE "{pad}";\nIOBUF PORT "clk" IO_TYPE=LVCMOS33;\n'
            cmd += ["--lpf", name]
    else:
        cmd.append("--pcf-allow-unconstrained")
        if pad:
            name, text = "clock.pcf", f"set_io clk {pad}\n"
            cmd += ["--pcf", name]
    if not route:
        cmd.append("--no-route")
    return cmd, name, text


def write_wrapper_verilog(cfg: EPConfig, work: Path, *, train: bool = True) -> dict:
    """The core behind the serial wrapper as Verilog in ``work/<WRAPPER_TOP>.v``; its serialised widths."""
    from amaranth.back import verilog

    from eqfpga.hdl.core import EPCore
    from eqfpga.hdl.generate import check_hardware

    from .top import WRAPPER_TOP, SerialWrapper
    check_hardware(cfg)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    w = SerialWrapper(EPCore(cfg=cfg, train=train))
    (work / f"{WRAPPER_TOP}.v").write_text(verilog.convert(w, name=WRAPPER_TOP, ports=[w.sin, w.load, w.sout]))
    return {"pins": ["clk", "rst", "sin", "load", "sout"], "in_bits": w.in_bits, "out_bits": w.out_bits,
            "overhead_estimate": w.overhead}


def build_core(cfg, out_dir=None, *, device: str = "LFE5U-85F", package: str | None = None,
               clock_mhz: float = 100.0, seed: int = 1, route: bool = True, timeout: float | None = None,
               router: str = "router2", train: bool = True, quiet: bool = False) -> BuildReport:
    """Synthesise, place and route ``cfg``'s core behind the serial wrapper on ``device``.

    ``package``: nextpnr's package name (default: the device's first, e.g. CABGA381); ``clk`` is
    pinned to the package's clock pad when the device table knows one. ``clock_mhz``: nextpnr's
    target. ``route=False``: place only (Fmax is the post-placement estimate). ``timeout``: seconds
    per tool; a nextpnr timeout still writes the report. ``router``: nextpnr's router (router2
    routes the core far faster than router1). ``train=False``: the inference-only core.
    ``out_dir``: default :func:`default_out_dir`. Raises DoesNotFit (before any tool runs, or with
    nextpnr's numbers), ToolMissing, ToolFailed, ValueError (unknown device or package).
    """
    t_all = time.monotonic()
    cfg = load_config(cfg)
    dev = device_named(device)
    package = package or dev.default_package
    if package not in dev.packages:
        raise ValueError(f"{dev.name} has no package {package!r}; known: {', '.join(dev.packages)}")
    est = precheck(cfg, dev, train=train)
    tools = FAMILY_TOOLS[dev.family]
    yosys, pnr = find_tool("yosys"), find_tool(tools["nextpnr"])
    from .top import WRAPPER_TOP
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg, device=dev.name)
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    where = f"config {cfg.name!r} does not fit {dev.name}"
    _say(quiet, f"eqfpga build --core-only: {cfg.name} on {dev.name} {package}, target {clock_mhz:g} MHz; "
                f"work folder {work}")

    times = {}
    t0 = time.monotonic()
    wrapper = write_wrapper_verilog(cfg, work, train=train)
    times["verilog_s"] = round(time.monotonic() - t0, 1)
    netlist = f"{WRAPPER_TOP}.json"
    script = (f"read_verilog -sv {WRAPPER_TOP}.v; {BEFORE_SYNTH}; {tools['synth']} -top {WRAPPER_TOP} -json {netlist}; "
              f"tee -q -o {STAT} stat -json")
    times["yosys_s"], reused = _synthesise(yosys, work, f"{WRAPPER_TOP}.v", script, ["-p", script], netlist,
                                           timeout)
    _say(quiet, f"  yosys {'reused the netlist in ' + str(work) if reused else str(times['yosys_s']) + ' s'}")

    cmd, constraints, text = _core_pnr_cmd(dev, package, clock_mhz, seed, netlist, router, route, pnr)
    if constraints:
        (work / constraints).write_text(text)
    digest = _inputs_digest(work, netlist, cmd, [], constraints)
    earlier = _reusable(out, digest)
    if earlier is not None:
        _say(quiet, f"  nextpnr: reusing {out / FILE_NAME} (same netlist and options)")
        return earlier
    for stale in (INPUTS_DIGEST, FILE_NAME):
        (out / stale).unlink(missing_ok=True)
    times["nextpnr_s"], finished = _place_and_route(cmd, work, out, timeout, where)
    _say(quiet, f"  nextpnr {times['nextpnr_s']} s" + ("" if finished else " (timeout)"))

    res = nextpnr.read_results(work, clock_mhz)
    cells = _yosys_cells(work)
    times["total_s"] = round(time.monotonic() - t_all, 1)
    status = _status(finished, route, timeout)
    report = BuildReport(
        kind="core", family=dev.family, device=dev.name, package=package, config=cfg.to_dict(),
        target_mhz=float(clock_mhz), fmax_mhz=res.fmax_mhz, routed=status == "routed", status=status,
        resources=_resources(dev, res.utilization, cells), times_s=times, seed=seed,
        critical_path=res.critical_path, precheck=precheck_record(est, dev),
        tools={"yosys": yosys[0], "nextpnr": pnr[0], "router": router},
        logs=_keep_logs(work, out), yosys_cells=cells, fmax_by_clock=res.fmax_by_clock,
        wrapper=wrapper)
    report.save(out / FILE_NAME)
    if finished:
        (out / INPUTS_DIGEST).write_text(digest + "\n")
    return report


# ---- a board ------------------------------------------------------------------------------------
def config_digest(cfg: EPConfig) -> dict:
    """sha256 (16 hex digits) and CRC-32 of the config's elaborated JSON (``cfg.elaborated_json()``:
    the runtime fields ``RUNTIME_FIELDS`` left out); the CRC is the one the board reports in INFO
    (``config_crc``), so a host can match a board to its build report, and every config that
    differs from the build's only in runtime fields (seed, epochs, name) has the same digest."""
    from eqfpga.hdl.protocol import config_crc
    js = cfg.elaborated_json().encode()
    return {"sha256": hashlib.sha256(js).hexdigest()[:16], "crc32": f"{config_crc(cfg):08x}"}


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


def _board_cmds(b: Board, dev: Device, pnr: list, pack: list, target_mhz: float, seed: int,
                router: str | None) -> tuple[list, list, str, str]:
    """nextpnr and packer commands of a board build; the bitstream and constraint file names."""
    from .top import BOARD_TOP as T
    cmd = pnr + ["--quiet", "--log", nextpnr.LOG, dev.nextpnr_flag, "--package", dev.nextpnr_package(b.package)]
    if dev.family == "ecp5":
        constraints, bit = f"{T}.lpf", f"{T}.bit"
        cmd += ["--speed", str(b.platform_cls.speed), "--lpf", constraints, "--textcfg", f"{T}.config"]
        pack = pack + ["--compress", "--input", f"{T}.config", "--bit", bit]
    else:
        constraints, bit = f"{T}.pcf", f"{T}.bin"
        cmd += ["--pcf", constraints, "--asc", f"{T}.asc"]
        pack = pack + [f"{T}.asc", bit]
    cmd += ["--json", f"{T}.json", "--report", nextpnr.REPORT, "--timing-allow-fail", "--seed", str(seed),
            "--freq", f"{target_mhz:.3f}"]
    if router:
        cmd += ["--router", router]
    return cmd, pack, bit, constraints


def _tidy_work(work: Path, keep: set) -> None:
    """Remove the work files a later build does not reuse (it reuses the netlist and its stamp)."""
    for p in work.iterdir():
        if p.name not in keep:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


def build_board(board, cfg, out_dir=None, *, clock_hz: float | None = None, baud: int | None = None,
                seed: int = 1, do_pack: bool = True, timeout: float | None = None, keep_work: bool = False,
                force: bool = False, router: str | None = "router2", quiet: bool = False) -> BuildReport:
    """Pre-check, synthesise, place and route, pack; write ``out_dir/report.json`` and return it.

    ``clock_hz``: the target clock (default: the board's); the PLL's achieved frequency is what the
    UART divisor, the core and nextpnr's constraint use. ``baud``: default the board's.
    ``router``: nextpnr's router (default router2, which copes with the large lane-local cores;
    None: nextpnr's own default, router1). ``timeout``: seconds per tool; if nextpnr runs out of time the report
    is still written (no bitstream, ``routed`` false). ``keep_work``: keep every generated file
    (RTLIL, placed design) in ``out_dir/_work``; otherwise only what a rebuild reuses (the
    netlist). ``force``: build even when the pre-check refuses (the refusal is kept in the report).
    ``out_dir``: default :func:`default_out_dir`. Raises DoesNotFit, ToolMissing, ToolFailed,
    ValueError (clock or baud impossible).
    """
    from .top import BOARD_TOP, BoardTop, plan_clock, uart_divisor
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    t_all = time.monotonic()
    cfg = load_config(cfg)
    b = board if isinstance(board, Board) else resolve_board(board)
    dev = b.part
    clock = plan_clock(b, float(clock_hz if clock_hz is not None else b.default_clock_hz))
    f_hz, baud = int(round(clock["f_out_hz"])), int(baud if baud is not None else b.default_baud)
    divisor, err = uart_divisor(f_hz, baud)
    if abs(err) > MAX_BAUD_ERROR_PCT:
        raise ValueError(f"baud {baud} from a {f_hz / 1e6:g} MHz clock: divisor {divisor} gives "
                         f"{f_hz / divisor:,.0f} baud, {err:+.2f}% off (the limit is {MAX_BAUD_ERROR_PCT}%); "
                         f"choose a clock that is a multiple of the baud rate"
                         + (f" (e.g. --clock-mhz {near / 1e6:g})" if (near := exact_clock(b, baud, f_hz)) else ""))
    where = f"config {cfg.name!r} does not fit {b.name} ({b.device})"
    try:
        pre = precheck_record(precheck_board(cfg, b), dev)
    except DoesNotFit as e:
        if not force:
            raise
        pre = dict(precheck_record(estimate(cfg, dev.family, link=True), dev), refused_but_forced=str(e))
        _say(quiet, f"eqfpga build: warning (force=True): {e}")
    names = FAMILY_TOOLS[dev.family]
    tools = {"yosys": find_tool("yosys"), "nextpnr": find_tool(names["nextpnr"]), "pack": find_tool(names["pack"])}

    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg, board=b.name)
    work = out / WORK
    work.mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.monotonic()
    top = BoardTop(cfg, b, clock_hz=clock_hz, baud=baud)
    overrides = {"script_after_read": BEFORE_SYNTH, "script_after_synth": f"tee -q -o {STAT} stat -json"}
    if dev.family == "ice40":
        overrides["synth_opts"] = "-dsp -spram"
    b.platform().prepare(top, name=BOARD_TOP, **overrides).extract(str(work))
    times["elaborate_s"] = round(time.monotonic() - t0, 1)
    target_mhz = top.clock_hz / 1e6
    _say(quiet, f"eqfpga build: {cfg.name} on {b.name} ({b.device}), clock {target_mhz:g} MHz, baud {top.baud} "
                f"(divisor {top.divisor}); work folder {work}")

    netlist = f"{BOARD_TOP}.json"
    script = (work / f"{BOARD_TOP}.ys").read_text()
    times["yosys_s"], reused = _synthesise(tools["yosys"], work, f"{BOARD_TOP}.il", script, [f"{BOARD_TOP}.ys"],
                                           netlist, timeout)
    _say(quiet, f"  yosys {'reused the netlist in ' + str(work) if reused else str(times['yosys_s']) + ' s'}")

    pnr, pack, bitname, constraints = _board_cmds(b, dev, tools["nextpnr"], tools["pack"], target_mhz, seed, router)
    digest = _inputs_digest(work, netlist, pnr, pack if do_pack else [], constraints)
    earlier = _reusable(out, digest)
    if earlier is not None:
        _say(quiet, f"  nextpnr: reusing {out / FILE_NAME} (same netlist and options)")
        if not keep_work:
            _tidy_work(work, {netlist, STAT, YOSYS_DIGEST})
        return earlier
    for stale in (INPUTS_DIGEST, FILE_NAME, bitname):
        (out / stale).unlink(missing_ok=True)
    times["nextpnr_s"], finished = _place_and_route(pnr, work, out, timeout, where)
    _say(quiet, f"  nextpnr {times['nextpnr_s']} s" + ("" if finished else
                                                        ": stopped (timeout), no bitstream; Fmax is its estimate so far"))
    packed = do_pack and finished
    if packed:
        times["pack_s"] = run_tool(pack, work, "pack.log", timeout)
        shutil.copy2(work / bitname, out / bitname)

    res = nextpnr.read_results(work, target_mhz)
    cells = _yosys_cells(work)
    logs = _keep_logs(work, out)
    if not keep_work:
        _tidy_work(work, {netlist, STAT, YOSYS_DIGEST})
    pll = top.clock["pll"]
    times["total_s"] = round(time.monotonic() - t_all, 1)
    status = _status(finished, True, timeout)
    report = BuildReport(
        kind="board", family=dev.family, device=b.device, package=b.package, config=cfg.to_dict(),
        target_mhz=round(target_mhz, 6), fmax_mhz=res.fmax_mhz, routed=status == "routed", status=status,
        resources=_resources(dev, res.utilization, cells), times_s=times, seed=seed, board=b.name,
        clock={"oscillator_mhz": b.osc_hz / 1e6, "target_mhz": top.target_hz / 1e6,
               "achieved_mhz": round(top.clock["f_out_hz"] / 1e6, 6), "error_ppm": top.clock["error_ppm"],
               "pll": pll, "note": top.clock.get("note")},
        uart={"baud": top.baud, "divisor": top.divisor, "actual_baud": round(top.clock_hz / top.divisor, 1),
              "error_pct": round(top.baud_error_pct, 3), "usb_uart": b.usb_uart},
        critical_path=res.critical_path, precheck=pre,
        tools={k: v[0] for k, v in tools.items()} | {"router": router or "router1 (nextpnr default)"},
        bitstream=bitname if packed else None,
        bitstream_bytes=(out / bitname).stat().st_size if packed else None,
        program=b.program.format(bit=bitname), logs=logs, yosys_cells=cells, fmax_by_clock=res.fmax_by_clock,
        config_digest=config_digest(cfg))
    report.save(out / FILE_NAME)
    if finished:
        (out / INPUTS_DIGEST).write_text(digest + "\n")
    return report


# ---- the report in words ------------------------------------------------------------------------
def format_report(r: BuildReport) -> str:
    c = r.config
    rows = []
    if r.kind == "board":
        rows.append(("board", f"{r.board}: {r.device} {r.package}"))
    else:
        rows.append(("device", f"{r.device} {r.package} (the core alone, behind the serial wrapper)"))
    rows.append(("config", f"{c['name']} {'-'.join(map(str, c['sizes']))} P={c['parallelism']}"))
    if r.clock:
        ck = r.clock
        pll = ck.get("pll")
        how = f"{pll['primitive']} from {ck['oscillator_mhz']:g} MHz" if pll else "oscillator, no PLL"
        rows.append(("clock", f"{ck['achieved_mhz']:g} MHz (target {ck['target_mhz']:g}, {how})"))
    if r.uart:
        u = r.uart
        rows.append(("uart", f"{u['baud']:,} baud, divisor {u['divisor']}, error {u['error_pct']:+.2f}%"))
    for k, v in r.resources.items():
        pct = f" ({100 * v.used / v.available:.1f}%)" if isinstance(v.used, int) and v.available else ""
        rows.append((k, f"{v.used if v.used is not None else '-':>7} of {v.available}{pct}"))
    clock_name = "PLL clock" if r.kind == "board" else "core clock"
    rows.append((f"Fmax ({clock_name})", f"{r.fmax_mhz} MHz vs {r.target_mhz:g} MHz target: "
                                         f"{'PASS' if r.timing_met else 'FAIL'}"
                 + ("" if r.routed else f" (NOT ROUTED: {r.status})")))
    cp = r.critical_path
    if cp:
        rows.append(("critical path", f"{cp['delay_ns']} ns, {cp['logic_steps']} logic cells: "
                                      f"{cp['start']} -> {cp['end']}"))
    if r.wrapper:
        w = r.wrapper
        over = w["overhead_estimate"]
        rows.append(("wrapper overhead", f"~{over['TRELLIS_FF']} FF, ~{over['LUT4']} LUT4 "
                                         f"({w['in_bits']} in + {w['out_bits']} out bits serialised)"))
    rows.append(("time", ", ".join(f"{k[:-2]} {v} s" for k, v in r.times_s.items())))
    if r.bitstream:
        rows.append(("bitstream", f"{r.bitstream} ({r.bitstream_bytes:,} bytes)"))
        rows.append(("program", r.program))
    n = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{n}}  {v}" for k, v in rows)


def print_report(report: BuildReport) -> None:
    print(format_report(report))
