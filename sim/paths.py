"""Where generated output goes: one setting for every module that builds or caches something.

``EQFPGA_BUILD_DIR`` (environment) names the folder; by default it is ``build/`` under the current
working directory (never under the installed package, which may be read-only). Each user takes a
sub-folder of its own (``build_dir("fastsim")``, ``build_dir("boards")``, ...).
"""
from __future__ import annotations

import os
from pathlib import Path

ENV = "EQFPGA_BUILD_DIR"


def build_root() -> Path:
    """The root of all build output (not created here)."""
    return Path(os.environ.get(ENV) or Path.cwd() / "build").resolve()


def build_dir(*parts: str) -> Path:
    """A sub-folder of :func:`build_root` (not created here)."""
    return build_root().joinpath(*parts)
