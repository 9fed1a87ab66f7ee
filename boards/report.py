"""The one schema of a build report: what ``eqfpga build`` writes (``report.json``) and the bench reads.

A board build (core + link + PLL, ``kind="board"``) and a core-only build (``kind="core"``: the core
behind a serial wrapper, no board) write the same dataclass, so readers never guess at key names.
Fields that do not apply are None (a core build has no ``board``, ``clock`` or ``uart``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from eqfpga.golden.config import EPConfig

SCHEMA = 2
FILE_NAME = "report.json"


class ReportError(ValueError):
    """A report file that is not a build report of this schema (names the file and what is wrong)."""


@dataclass
class Resource:
    used: int | None
    available: int | None = None
    note: str | None = None


@dataclass
class BuildReport:
    kind: str                           # "board" or "core"
    family: str                         # "ecp5" or "ice40"
    device: str                         # e.g. "LFE5U-85F"
    package: str
    config: dict                        # EPConfig.to_dict() of the built config
    target_mhz: float                   # the clock the design was placed and routed for
    fmax_mhz: float | None              # nextpnr's Fmax of the core clock (None: placement did not finish)
    routed: bool                        # False: placed only, Fmax is the post-placement estimate
    status: str                         # nextpnr's outcome in words
    resources: dict[str, Resource]      # by nextpnr BEL / yosys cell name (LUT4, TRELLIS_FF, DP16KD, ...)
    times_s: dict[str, float]           # per tool step, and "total_s"
    seed: int = 1                       # nextpnr's placement seed
    board: str | None = None
    clock: dict | None = None           # board builds: oscillator, PLL dividers, achieved clock
    uart: dict | None = None            # board builds: baud, divisor, error
    critical_path: dict | None = None
    precheck: dict = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    bitstream: str | None = None        # path relative to the build folder
    bitstream_bytes: int | None = None
    program: str | None = None          # how to load the bitstream on the board
    logs: list[str] = field(default_factory=list)
    yosys_cells: dict[str, int] = field(default_factory=dict)
    fmax_by_clock: dict[str, dict] = field(default_factory=dict)   # nextpnr's Fmax of every clock net
    wrapper: dict | None = None         # core builds: the serial wrapper's pins, widths, overhead estimate
    config_digest: dict | None = None   # board builds: sha256, crc32 of the elaborated config JSON (INFO's config_crc)
    schema: int = SCHEMA

    @property
    def timing_met(self) -> bool:
        return self.fmax_mhz is not None and self.fmax_mhz >= self.target_mhz

    @property
    def epconfig(self) -> EPConfig:
        return EPConfig.from_dict(self.config)

    def used(self, name: str) -> int | None:
        r = self.resources.get(name)
        return None if r is None else r.used

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["timing_met"] = self.timing_met     # written for readers of the JSON; derived on load
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "report") -> "BuildReport":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ReportError(f"{source}: not a build report of schema {SCHEMA} (schema: {got!r}); "
                              f"rebuild it with `eqfpga build`")
        d = dict(d)
        d.pop("timing_met", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ReportError(f"{source}: unknown fields {unknown}")
        try:
            d["resources"] = {k: Resource(**v) for k, v in d.get("resources", {}).items()}
            return cls(**d)
        except TypeError as e:
            raise ReportError(f"{source}: {e}") from None

    def save(self, path) -> Path:
        """Write the report as JSON (atomically: a reader never sees half a file)."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "BuildReport":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ReportError(f"{path}: cannot read a build report ({e})") from None
        return cls.from_dict(d, source=str(path))
