"""The Verilator runtime's object cache (eqfpga.sim.objcache): a source outside the build folder is
compiled once per command and reused; the build's own sources always compile."""
import os
import shutil

from eqfpga.sim.objcache import main


def _compiler(tmp_path):
    """The real C++ compiler behind a script that counts its runs."""
    log = tmp_path / "runs.log"
    cc = tmp_path / "cc"
    cc.write_text(f"#!/bin/sh\necho run >> {log}\nexec {shutil.which('c++')} \"$@\"\n")
    cc.chmod(0o755)
    return str(cc), lambda: len(log.read_text().split()) if log.exists() else 0


def test_runtime_source_compiled_once(tmp_path, monkeypatch):
    cc, runs = _compiler(tmp_path)
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    src = runtime / "lib.cpp"
    src.write_text("int lib_answer() { return 42; }\n")
    cache = tmp_path / "cache"
    objs = []
    for build in ("a", "b"):
        folder = tmp_path / build
        folder.mkdir()
        # each build adds its own folder to the include path (as the harness builds do)
        obj = folder / "obj"
        obj.mkdir()
        monkeypatch.chdir(obj)
        assert main([cc, "-O0", "-MMD", f"-I{folder}", "-c", "-o", "lib.o", str(src)], str(cache)) == 0
        objs.append((obj / "lib.o").read_bytes())
        assert (obj / "lib.d").exists()
    assert runs() == 1 and objs[0] == objs[1]
    # other flags, or another source text: compiled again
    assert main([cc, "-O1", "-MMD", "-c", "-o", "lib.o", str(src)], str(cache)) == 0
    src.write_text("int lib_answer() { return 43; }\n")
    assert main([cc, "-O0", "-MMD", "-c", "-o", "lib.o", str(src)], str(cache)) == 0
    assert runs() == 3


def test_build_folder_sources_and_failures_are_not_cached(tmp_path, monkeypatch):
    cc, runs = _compiler(tmp_path)
    monkeypatch.chdir(tmp_path)
    own = tmp_path / "model.cpp"
    own.write_text("int model() { return 1; }\n")
    cache = tmp_path / "cache"
    for _ in range(2):
        assert main([cc, "-c", "-o", "model.o", str(own)], str(cache)) == 0
    assert runs() == 2 and not cache.exists()
    outside = tmp_path.parent / f"{tmp_path.name}-bad.cpp"
    outside.write_text("this is not C++\n")
    try:
        assert main([cc, "-c", "-o", "bad.o", str(outside)], str(cache)) != 0
        assert not cache.exists() or not any(cache.iterdir())
    finally:
        os.unlink(outside)
