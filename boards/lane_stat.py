"""What one lane of the core costs on the ECP5: yosys ``synth_ecp5`` on a ``Lane`` alone.

A lane is the unit the core repeats P times, so its cells decide how many lanes fit. A lane that
hashes (lane 0 of each ``Plan.hash_share`` lanes) and one that reads its neighbour's hash word
differ by the hash pipeline; ``lane_stat`` synthesises both and reports their mean per lane. The
broadcast tree's leaf registers, the adder trees and the root are not in it (see ``eqfpga build``).

``eqfpga lane-stat --config mnist-1h`` prints the table; seconds of yosys per lane synthesised.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from eqfpga.golden.config import EPConfig
from eqfpga.hdl.lane import Lane
from eqfpga.hdl.plan import Plan

from .tools import find_tool, run_tool

CELLS = ("LUT4", "CCU2C", "PFUMX", "L6MUX21", "TRELLIS_DPR16X4", "TRELLIS_FF", "DP16KD", "MULT18X18D")


def synth_lane(cfg: EPConfig, p: int, work: Path, train: bool = True) -> dict:
    """{cell type: count} of lane ``p`` of ``cfg``'s core after ``synth_ecp5`` (flattened)."""
    from amaranth.back import rtlil

    pl = Plan(cfg)
    if not 0 <= p < pl.P:
        raise ValueError(f"lane {p} does not exist: the config has P = {pl.P} lanes (0 .. {pl.P - 1})")
    work.mkdir(parents=True, exist_ok=True)
    (work / "lane.il").write_text(rtlil.convert(Lane(pl, p, train=train), name="lane"))
    run_tool(find_tool("yosys") + ["-q", "-p", "read_rtlil lane.il; synth_ecp5 -top lane; "
                                   "tee -q -o stat.json stat -json"], work, "yosys.log")
    counts = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    return {k: int(counts.get(k, 0)) for k in CELLS}


def lane_stat(cfg: EPConfig, train: bool = True, work: Path | None = None) -> dict:
    """The lane that hashes, one that does not (if the config shares hashes) and the mean a lane."""
    pl = Plan(cfg)
    S = pl.hash_share
    lanes = {"hashing lane 0": 0}
    if S > 1:
        lanes["sharing lane 1"] = 1
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(work) if work else Path(tmp)
        rows = {name: synth_lane(cfg, p, base / f"lane{p}", train) for name, p in lanes.items()}
    if S > 1:
        a, b = rows["hashing lane 0"], rows["sharing lane 1"]
        rows[f"mean of {S} lanes"] = {k: round((a[k] + (S - 1) * b[k]) / S, 1) for k in CELLS}
    return {"config": cfg.name, "P": pl.P, "hash_share": S, "train": train, "lanes": rows}


def print_lane_stat(st: dict) -> None:
    print(f"{st['config']}: P = {st['P']}, one hash per {st['hash_share']} lanes"
          f"{'' if st['train'] else ', inference only'} (yosys synth_ecp5, one lane alone)")
    print("| lane | " + " | ".join(CELLS) + " |")
    print("|---" * (len(CELLS) + 1) + "|")
    for name, row in st["lanes"].items():
        print(f"| {name} | " + " | ".join(f"{row[k]:g}" for k in CELLS) + " |")
