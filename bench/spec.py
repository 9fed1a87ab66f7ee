"""What one ``eqfpga bench`` run measures and how much: :class:`RunSpec`, serialisable to JSON."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

SECTIONS = ("accuracy", "precision", "speed", "sim", "scaling")

# Small configs synthesised for the scaling fit: (base preset, hidden size, P).
SYNTH_POINTS_QUICK = (("tiny", 8, 2), ("tiny", 8, 4), ("tiny", 8, 8))
SYNTH_POINTS_FULL = SYNTH_POINTS_QUICK + (("tiny", 16, 4),)


@dataclass(frozen=True)
class RunSpec:
    """Sizes of every section of one run. ``quick()``: every section, small (about 10 minutes on a
    2-core machine); ``full()``: 1 epoch on all 60,000 images, 10,000 test images, 3 seeds."""
    mode: str                            # "quick" or "full": names the command (`eqfpga bench [--quick]`)
    train: int                           # training images of the accuracy runs (1 epoch)
    test: int                            # test images scored
    seeds: tuple                         # one accuracy run per seed
    curve: tuple                         # sample counts at which the training curves are scored
    study_widths: tuple                  # weight widths of the precision study
    study_train: int                     # its training images
    torch_b1: int                        # samples of the torch batch-1 timing
    torch_batched: int                   # samples of each batched torch timing
    torch_batches: tuple                 # the batch sizes timed
    torch_repeats: int                   # repeats of each torch timing
    check_cost_samples: int              # samples of the simulation-throughput section
    synth_points: tuple                  # ((base preset, hidden, P), ...) synthesised for the LUT/Fmax fit
    synth_route: bool                    # route the points (False: place only, post-placement Fmax)
    synth_timeout: float                 # seconds per tool
    synth_check: bool                    # also place the base config to check the fit
    synth_budget: float | None           # seconds for all syntheses (None: no limit)
    config: str = "mnist-1h"             # preset name or JSON file of the measured config
    sections: tuple = SECTIONS
    rtl: bool = True                     # False: no Verilator runs (tests)
    synth: bool = True                   # False: no synthesis (tests)

    def __post_init__(self):
        if self.mode not in ("quick", "full"):
            raise ValueError(f"RunSpec: mode must be 'quick' or 'full', not {self.mode!r}")
        unknown = [s for s in self.sections if s not in SECTIONS]
        if unknown:
            raise ValueError(f"RunSpec: unknown sections {unknown}; known: {', '.join(SECTIONS)}")
        if not self.seeds:
            raise ValueError("RunSpec: seeds is empty; give at least one seed")
        for name in ("train", "test", "study_train", "torch_b1", "torch_batched", "torch_repeats",
                     "check_cost_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunSpec: {name} must be at least 1, not {getattr(self, name)}")

    @classmethod
    def quick(cls, **changes) -> "RunSpec":
        return cls(mode="quick", train=1000, test=1000, seeds=(0, 1, 2), curve=(250, 500, 1000),
                   study_widths=(8, 12, 16), study_train=1000, torch_b1=300, torch_batched=2000,
                   torch_batches=(20, 100), torch_repeats=5, check_cost_samples=300,
                   synth_points=SYNTH_POINTS_QUICK, synth_route=False, synth_timeout=300,
                   synth_check=False, synth_budget=420).replace(**changes)

    @classmethod
    def full(cls, **changes) -> "RunSpec":
        return cls(mode="full", train=60000, test=10000, seeds=(0, 1, 2),
                   curve=(2500, 5000, 10000, 20000, 40000, 60000), study_widths=tuple(range(8, 17)),
                   study_train=20000, torch_b1=2000, torch_batched=20000, torch_batches=(20, 100),
                   torch_repeats=7, check_cost_samples=5000, synth_points=SYNTH_POINTS_FULL,
                   synth_route=True, synth_timeout=3600, synth_check=True, synth_budget=None).replace(**changes)

    @property
    def is_quick(self) -> bool:
        return self.mode == "quick"

    @property
    def command(self) -> str:
        return "eqfpga bench --quick" if self.is_quick else "eqfpga bench"

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return json.loads(self.to_json())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"RunSpec: unknown fields {unknown}; known: {', '.join(sorted(names))}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in d and f.default is dataclasses.MISSING)
        if missing:
            raise ValueError(f"RunSpec: missing fields {missing}")
        return cls(**{k: _tuples(v) for k, v in d.items()})

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        return cls.from_dict(json.loads(text))


def _tuples(v):
    """JSON lists back to the tuples the dataclass holds (also nested: synth_points)."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v
