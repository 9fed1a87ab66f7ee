"""What nextpnr reports: resource use, the Fmax of each clock, the critical path.

``read_results(work, target_mhz)`` reads ``nextpnr_report.json`` (``--report``) or, when nextpnr
stopped before writing it (a timeout), the utilisation table and the latest Fmax lines of its log
(``nextpnr.log``). The design's clock is the one constrained at ``target_mhz``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

REPORT = "nextpnr_report.json"
LOG = "nextpnr.log"
# cell-name suffixes nextpnr adds to the signal a cell implements
_CELL_SUFFIX = r"_(?:LUT4|CCU2C|TRELLIS|PFUMX|L6MUX21|DP16KD|MULT18X18D|SB_LUT4|SB_CARRY|SB_DFF|SB_RAM|SB_MAC16)|\$"


@dataclass
class PnrResults:
    utilization: dict          # {BEL: {"used", "available"}}
    fmax_by_clock: dict        # {clock net: {"achieved", "constraint"}} (MHz)
    fmax_mhz: float | None     # the design clock's achieved Fmax
    critical_path: dict | None


def critical_path(rep: dict) -> dict | None:
    """The longest of nextpnr's critical paths: delay, its split by step type, ends, the signals it passes."""
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
        short = re.split(_CELL_SUFFIX, name, maxsplit=1)[0]
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


def utilization_from_log(log: str) -> dict:
    """The utilisation table of nextpnr's log: {BEL: {"used", "available"}}."""
    return {bel: {"used": int(u), "available": int(a)}
            for bel, u, a in re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log)}


def overused(log: str) -> list:
    """[(BEL, used, available)] that the log's utilisation table shows over the device's capacity."""
    return [(bel, u["used"], u["available"]) for bel, u in utilization_from_log(log).items()
            if u["used"] > u["available"]]


def fmax_from_log(log: str) -> dict:
    """The latest Fmax line of each clock (placement estimates, then the routed figure)."""
    return {clk: {"achieved": float(f), "constraint": float(c)}
            for clk, f, c in re.findall(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz "
                                        r"\((?:PASS|FAIL) at ([\d.]+) MHz", log)}


def read_results(work, target_mhz: float) -> PnrResults:
    work = Path(work)
    rep = json.loads((work / REPORT).read_text()) if (work / REPORT).exists() else {}
    log = (work / LOG).read_text(errors="replace") if (work / LOG).exists() else ""
    util = rep.get("utilization") or utilization_from_log(log)
    fmax_all = rep.get("fmax") or fmax_from_log(log)
    # the design clock: the net constrained at the target (nextpnr derives a PLL output's constraint)
    clock = {k: v for k, v in fmax_all.items() if abs(v.get("constraint", 0) - target_mhz) < 0.01 * target_mhz}
    clock = clock or fmax_all
    fmax = min((v["achieved"] for v in clock.values()), default=None)
    return PnrResults(utilization=util, fmax_by_clock=fmax_all,
                      fmax_mhz=round(fmax, 2) if fmax is not None else None, critical_path=critical_path(rep))
