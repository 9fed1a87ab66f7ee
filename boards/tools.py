"""Finding and running the FPGA tools (yosys, nextpnr, ecppack / icepack): one runner for every step.

``find_tool(kind)``: ``$YOSYS`` (``$NEXTPNR_ECP5``, ...; the names Amaranth's build scripts use) when
set, else a native tool on PATH (faster: the WebAssembly nextpnr is single-threaded), else the
YoWASP build installed by ``pip install -e .[boards]``.

``run_tool(cmd, cwd, log, timeout)``: runs it in ``cwd`` with its output in ``cwd/log`` and returns
the seconds it took; raises :class:`ToolTimeout` or :class:`ToolFailed` (with the end of the log).
The YoWASP tools see a private /tmp, so every tool runs inside the work folder with relative paths.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

TOOL_ENV = {"yosys": "YOSYS", "nextpnr-ecp5": "NEXTPNR_ECP5", "nextpnr-ice40": "NEXTPNR_ICE40",
            "ecppack": "ECPPACK", "icepack": "ICEPACK"}
LOG_TAIL_LINES = 20


class ToolMissing(RuntimeError):
    """A tool was not found (the message says how to install it)."""


class ToolFailed(RuntimeError):
    """A tool exited with an error (the message ends with its log's last lines)."""


class ToolTimeout(TimeoutError):
    """A tool did not finish in time; ``seconds`` is how long it ran."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


def find_tool(kind: str) -> list:
    """The command of a tool (a list, to extend with arguments); ToolMissing says how to get it."""
    if kind not in TOOL_ENV:
        raise ValueError(f"unknown tool {kind!r}; known: {', '.join(TOOL_ENV)}")
    env = TOOL_ENV[kind]
    if os.environ.get(env):
        return [os.environ[env]]
    for name in (kind, f"yowasp-{kind}"):
        p = shutil.which(name)
        if p:
            return [p]
    p = Path(sys.executable).parent / f"yowasp-{kind}"      # the venv's YoWASP, venv not activated
    if p.exists():
        return [str(p)]
    raise ToolMissing(f"{kind} not found: install the optional tools with `pip install -e .[boards]` "
                      f"(YoWASP {kind}), or put a native {kind} on PATH (preferred when found), "
                      f"or set ${env}")


def run_tool(cmd: list, cwd, log: str, timeout: float | None = None) -> float:
    """Run ``cmd`` in ``cwd``, stdout and stderr into ``cwd/log``; return its wall-clock seconds."""
    cwd = Path(cwd)
    name = Path(cmd[0]).name
    t0 = time.monotonic()
    with open(cwd / log, "w") as fh:
        try:
            p = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolTimeout(f"{name} did not finish in {timeout} s (log: {cwd / log})",
                              round(time.monotonic() - t0, 1)) from None
    seconds = round(time.monotonic() - t0, 1)
    if p.returncode != 0:
        tail = (cwd / log).read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise ToolFailed(f"{name} failed (status {p.returncode}); {cwd / log} ends:\n" + "\n".join(tail))
    return seconds
