"""Shared by the tests: the session's background Verilator builds, and a fresh interpreter with one
package's import blocked.

The builds: the Verilator builds the selected tests need start at once, in the background.

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


# A fresh interpreter where importing one package fails: argv[1] is the package, the rest are the
# modules to import; stdin is more code to run after them. Prints "ok" when all went well.
BLOCKED_IMPORT = r"""
import importlib, importlib.abc, sys

blocked = sys.argv[1]


def is_blocked(name):
    return name == blocked or name.startswith(blocked + ".")


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if is_blocked(name):
            raise ImportError(f"{blocked} is blocked in this test ({name})")
        return None


sys.meta_path.insert(0, Block())
for name in sys.argv[2:]:
    importlib.import_module(name)
assert not any(is_blocked(m) for m in sys.modules), f"{blocked} got imported"
try:
    importlib.import_module(blocked)
except ImportError:
    pass
else:
    raise AssertionError(f"the {blocked} block does not work")
exec(sys.stdin.read())
print("ok")
"""


@pytest.fixture
def import_without(tmp_path):
    """``import_without(package, *modules, code="")``: import ``modules`` (then run ``code``) in a
    fresh interpreter where importing ``package`` fails; returns the CompletedProcess."""
    def run(package: str, *modules: str, code: str = ""):
        return subprocess.run([sys.executable, "-c", BLOCKED_IMPORT, package, *modules], input=code,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture(scope="module")
def torch_one_thread():
    """torch on one thread for a module of tiny matrices: its thread pool only adds overhead there
    (five-fold on a loaded 2-core machine). torch is imported here, not by every test session."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
