"""Build reports the speed and scaling sections read: board builds (``eqfpga build``) and core
builds, always through ``BuildReport.load`` (a file of another schema is an error naming it).

Where they are looked for:

* board builds: ``<build root>/<board>-<config>/report.json`` (one or two folders deep, as
  ``eqfpga build`` names its output folder) and every ``*.json`` below a boards folder (the committed
  reports, ``docs/boards`` beside the default output folder ``docs``); a report counts for a config
  when it has the config's sizes and P;
* core builds: ``<root>/*/report.json`` of the given roots (the bench's own synthesis folder).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import eqfpga.hdl
from eqfpga.boards.build import precheck_board
from eqfpga.boards.platforms import resolve_board
from eqfpga.boards.report import BuildReport
from eqfpga.boards.fit import DoesNotFit

from .published import published

HDL_DIR = Path(eqfpga.hdl.__file__).resolve().parent


def hdl_mtime() -> float:
    """Newest modification time of the hdl sources: a report older than this may describe an older core."""
    return max((f.stat().st_mtime for f in HDL_DIR.glob("*.py")), default=0.0)


def display_path(p: Path) -> str:
    """``p`` relative to the working directory when it lies below it (as the page shows paths)."""
    p = Path(p).resolve()
    return str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)


def _date(mtime: float) -> str:
    return _dt.datetime.fromtimestamp(mtime, _dt.timezone.utc).isoformat(timespec="seconds")


def _same_net(rep: BuildReport, cfg) -> bool:
    """The report describes ``cfg``'s net: the same sizes and P, under any name (a preset's name
    alone is not enough: mnist-1h was built at P = 8, 32 and 64)."""
    c = rep.config
    return (list(c.get("sizes") or []), c.get("parallelism")) == (list(cfg.sizes), cfg.parallelism)


def find_board_reports(cfg, *, build_root, boards_dir=None) -> list:
    """Board build reports of ``cfg``, oldest first (the newest wins per board). Raises ReportError
    for a report.json or boards-folder file that is not a build report of the current schema."""
    build_root = Path(build_root)
    paths = sorted(build_root.glob(f"*-{cfg.name}/report.json")) + sorted(build_root.glob(f"*/*-{cfg.name}/report.json"))
    if boards_dir is not None and Path(boards_dir).is_dir():
        paths += sorted(Path(boards_dir).rglob("*.json"))      # lane-local/ and other subfolders too
    found = []
    for p in sorted(set(paths), key=lambda q: q.stat().st_mtime):
        rep = BuildReport.load(p)
        if rep.kind != "board" or not _same_net(rep, cfg):
            continue
        mt = p.stat().st_mtime
        found.append({"board": rep.board, "path": display_path(p), "mtime": _date(mt),
                      "fresh": mt >= hdl_mtime(), "report": rep})
    return found


def board_figures(found: list, cfg, boards=None) -> list:
    """Figures of each built board (from its report) and of each board of ``boards`` (default: the
    published list) not built: its default clock and baud, or why the config cannot fit it."""
    out = {}
    for f in found:
        rep = f["report"]
        out[f["board"]] = {
            "board": f["board"], "built": True, "source": f["path"], "report_date": f["mtime"],
            "fresh": f["fresh"], "fmax_mhz": rep.fmax_mhz, "clock_mhz": rep.target_mhz,
            "baud": rep.uart["baud"], "timing_met": rep.timing_met,
            "resources": {k: r.used for k, r in rep.resources.items()}, "routed": rep.routed}
    for name in boards if boards is not None else published().boards:
        if name in out:
            continue
        b = resolve_board(name)
        try:       # the board build's own pre-check (no tools run): a config that cannot fit gets no figures
            precheck_board(cfg, name)
            fits, why = True, None
        except DoesNotFit as e:
            fits, why = False, str(e)
        out[name] = {"board": name, "built": False, "source": None, "fmax_mhz": None, "resources": {},
                     "clock_mhz": b.default_clock_hz / 1e6 if fits else None, "baud": b.default_baud,
                     "device": b.device, "family": b.family, "fits": fits, "precheck": why}
    return list(out.values())


def core_report(cfg, roots) -> dict | None:
    """The newest core build report of exactly ``cfg`` (its runtime fields aside: ``RUNTIME_FIELDS``)
    with an Fmax, under ``roots`` (``<root>/*/report.json``); None if there is none."""
    want = cfg.elaborated_dict()
    best = None
    for root in roots:
        for p in Path(root).glob("*/report.json"):
            rep = BuildReport.load(p)
            if rep.kind != "core" or rep.fmax_mhz is None:
                continue
            if rep.epconfig.elaborated_dict() != want:
                continue
            if best is None or p.stat().st_mtime > best[0]:
                best = (p.stat().st_mtime, p, rep)
    if best is None:
        return None
    mt, p, rep = best
    return {"path": display_path(p), "fmax_mhz": rep.fmax_mhz, "device": rep.device, "routed": rep.routed,
            "status": rep.status, "fresh": mt >= hdl_mtime(), "P": rep.config["parallelism"],
            "sizes": rep.config["sizes"], "resources": {k: r.used for k, r in rep.resources.items()},
            "date": _date(mt)}
