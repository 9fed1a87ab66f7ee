"""One build-and-cache function for every Verilator build of the simulators.

Each build has a folder of its own (``build_dir(<simulator>, <tag>)`` by default, see
``eqfpga.sim.paths``). Two stamps in it decide whether the binary there is reused:

* ``sources.sha256``: what the generated files are made from -- the design's key (config,
  parameters, build options), the sources of the imported ``eqfpga.golden``, ``eqfpga.hdl`` and
  ``eqfpga.sim`` packages (wherever they are installed), the C++ harnesses, the flags, the Amaranth
  and Verilator versions. While it matches, nothing is regenerated: converting a design to Verilog
  alone takes seconds.
* ``build.sha256``: the generated files themselves (the Verilog, headers, the harness copy) and
  the flags. When the sources changed but the generated text did not, the binary is reused.

Anything else rebuilds: both stamps are removed first, so an interrupted build is never reused.
A lock on the folder lets one process build it while others wait for the result.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from eqfpga.golden.config import EPConfig

HARNESS_DIR = Path(__file__).resolve().parent / "harness"


def config_tag(cfg: EPConfig) -> str:
    """A folder name for ``cfg``: its name and a hash of all its fields."""
    return f"{cfg.name}-{hashlib.sha256(cfg.to_json().encode()).hexdigest()[:10]}"


def core_key(cfg: EPConfig) -> str:
    """What the core alone (``EPCore``) is built from: the config without its runtime fields
    (``RUNTIME_FIELDS``: the seed is an input port), so configs that differ only in seed, epochs or
    name share one core build. The board (``LinkedCore``) keeps the whole config: its config ROM and
    the seed register's reset value come from it."""
    return cfg.elaborated_json()


def core_tag(cfg: EPConfig) -> str:
    """A folder name for a core build of ``cfg``: its name and a hash of ``core_key(cfg)``."""
    return f"{cfg.name}-{hashlib.sha256(core_key(cfg).encode()).hexdigest()[:10]}"


def params_tag(weights, biases) -> str:
    """A short hash of initial parameters baked into a design ("" when there are none)."""
    if weights is None and biases is None:
        return ""
    h = hashlib.sha256()
    for group in (weights or [], biases or []):
        h.update(b"|")
        for part in group:
            a = np.asarray(part, dtype=np.int64)
            h.update(str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:10]


def _package_sources() -> bytes:
    """Every Python source of the packages that generate the designs, as imported, and the
    harnesses: what the Verilog and the binaries are made from besides the key."""
    import eqfpga.golden
    import eqfpga.hdl
    import eqfpga.sim

    h = hashlib.sha256()
    for pkg in (eqfpga.golden, eqfpga.hdl, eqfpga.sim):
        folder = Path(pkg.__file__).resolve().parent
        for f in sorted(folder.glob("*.py")):
            h.update(f"{pkg.__name__}/{f.name}".encode() + b"\0" + f.read_bytes())
    for f in sorted(HARNESS_DIR.glob("*.cpp")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.digest()


def _tool_versions() -> str:
    # MAKEFLAGS is set by toolchain.setup_verilator and reaches the C++ compiler
    return (f"amaranth {version('amaranth')} verilator {version('verilator')} "
            f"MAKEFLAGS={os.environ.get('MAKEFLAGS', '')}")


def cached_build(folder: Path, product: str, *, key: str, flags: Sequence[str],
                 generate: Callable[[], Mapping[str, str]], compile: Callable[[Path], None]) -> Path:
    """Build (or reuse) one Verilator binary in ``folder``; returns the path of ``product``
    (relative to ``folder``).

    key: everything besides the package sources that decides the design (the config's JSON,
    parameters, options). flags: the tool flags. generate(): the files to write into the folder
    ({file name: text}; the Verilog, headers, the harness). compile(folder): runs the tool, which
    must leave ``product`` behind.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # one builder a folder at a time: another process (a second test run, a background build)
    # waits here, then finds the build done
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(folder, product, key, flags, generate, compile)


def _build_locked(folder: Path, product: str, key: str, flags, generate, compile) -> Path:
    exe = folder / product
    src_stamp, build_stamp = folder / "sources.sha256", folder / "build.sha256"
    tools = _tool_versions()
    src_digest = hashlib.sha256(b"\0".join([key.encode(), " ".join(flags).encode(), tools.encode(),
                                            _package_sources()])).hexdigest()
    if exe.exists() and build_stamp.exists() and _read(src_stamp) == src_digest:
        return exe
    files = dict(generate())
    h = hashlib.sha256(f"{' '.join(flags)}\0{tools}".encode())
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0" + files[name].encode())
    digest = h.hexdigest()
    if exe.exists() and _read(build_stamp) == digest:
        src_stamp.write_text(src_digest)
        return exe
    for stamp in (src_stamp, build_stamp):
        stamp.unlink(missing_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    compile(folder)
    if not exe.exists():
        raise RuntimeError(f"the build in {folder} did not produce {product}")
    build_stamp.write_text(digest)
    src_stamp.write_text(src_digest)
    return exe


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None
