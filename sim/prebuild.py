"""Build simulator designs ahead of their use, in a process of its own.

``python -m eqfpga.sim.prebuild SPECS.json`` builds each design of the list in order (the same
``cached_build`` folders the simulators use; its lock makes a user of a design that is still being
built wait for it). A spec is ``{"kind": "cocotb" | "fastsim" | "boardsim", "config": <EPConfig
dict>, "options": {...}}``; options are the keyword arguments of that simulator's ``build``.
The test session starts this at its beginning so that builds overlap the tests before them.
"""
from __future__ import annotations

import json
import sys
import time

from eqfpga.golden.config import EPConfig


def design(kind: str, cfg: EPConfig, **options) -> dict:
    """A spec for the list."""
    if kind not in ("cocotb", "fastsim", "boardsim"):
        raise ValueError(f"kind must be cocotb, fastsim or boardsim, not {kind!r}")
    return {"kind": kind, "config": cfg.to_dict(), "options": options}


def build(spec: dict) -> None:
    cfg = EPConfig.from_dict(spec["config"])
    options = spec.get("options", {})
    if spec["kind"] == "cocotb":
        from .runner import build as build_cocotb
        build_cocotb(cfg, **options)
    elif spec["kind"] == "fastsim":
        from .fastsim import build as build_fastsim
        build_fastsim(cfg, **options)
    elif spec["kind"] == "boardsim":
        from .boardsim import build as build_board
        build_board(cfg, **options)
    else:
        raise ValueError(f"unknown design kind {spec['kind']!r}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m eqfpga.sim.prebuild SPECS.json", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        specs = json.load(fh)
    for spec in specs:
        t0 = time.time()
        build(spec)
        print(f"prebuild: {spec['kind']} {spec['config']['name']} {spec.get('options', {})} "
              f"{time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
