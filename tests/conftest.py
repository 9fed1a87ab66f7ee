"""Session-wide: the Verilator builds the selected tests need start at once, in the background.

A test module lists its designs in ``PREBUILD`` (``eqfpga.sim.prebuild.design(...)`` specs). One
process builds those of every selected module, in test order, while the tests before them run;
a test that reaches a design still being built waits for it (the build folder's lock), then
reuses it. Every design is built once per configuration and reused across tests and sessions
(``eqfpga.sim.build_cache``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from eqfpga.sim.paths import build_dir


def _specs(items) -> list:
    specs, seen, modules = [], set(), []
    for item in items:
        mod = getattr(item, "module", None)
        if mod is not None and mod not in modules:
            modules.append(mod)
    for mod in modules:
        for spec in getattr(mod, "PREBUILD", ()):
            key = json.dumps(spec, sort_keys=True)
            if key not in seen:
                seen.add(key)
                specs.append(spec)
    return specs


@pytest.fixture(scope="session", autouse=True)
def prebuild_designs(request):
    specs = _specs(request.session.items)
    if not specs:
        yield
        return
    folder = build_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prebuild.json").write_text(json.dumps(specs))
    with open(folder / "prebuild.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "eqfpga.sim.prebuild", str(folder / "prebuild.json")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    yield
    # a session that ended early (-x, a selection) does not wait for builds it no longer needs
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait()
