"""The machine a run measured on: CPU, load average, versions, the code's git commit."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def load_average() -> list:
    """1, 5 and 15 minute load averages (other jobs on the cores make speeds lower bounds)."""
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict:
    cpu = platform.processor() or ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "torch": torch.__version__}


def git_state() -> dict:
    """Commit and dirty flag of the checkout the eqfpga code runs from (empty outside a checkout)."""
    where = Path(__file__).resolve().parent

    def q(*a):
        try:
            return subprocess.run(["git", *a], cwd=where, capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):      # no git, or not a checkout
            return ""
    return {"commit": q("rev-parse", "--short", "HEAD"), "dirty": bool(q("status", "--porcelain", "--untracked-files=no"))}
