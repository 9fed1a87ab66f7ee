"""The wheel holds every module and the presets; imports are package-qualified; no torch where none is needed."""
import ast
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_folders(root=ROOT) -> tuple:
    """The folders pyproject.toml maps to the top-level subpackages (folder -> eqfpga.<folder>)."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = []
    for name, folder in setup["package-dir"].items():
        if name.startswith("eqfpga.") and name.count(".") == 1:
            assert name == f"eqfpga.{folder}", f"{name} maps to {folder!r}: the folder must be named like it"
            folders.append(folder)
    return tuple(folders)


PACKAGES = package_folders()


def source_modules():
    """Module names (eqfpga.<pkg>.<...>) of every .py file under the package folders."""
    mods = set()
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            rel = p.relative_to(ROOT).with_suffix("")
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.add(".".join(["eqfpga"] + parts))
    return mods


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel from a copy of the sources (so the build leaves nothing in the repository)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(dist)], cwd=src, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    wheels = list(dist.glob("eqfpga-*.whl"))
    assert len(wheels) == 1, wheels
    unpacked = tmp / "unpacked"
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        z.extractall(unpacked)
    return unpacked, names


def test_wheel_holds_every_module_and_the_presets(wheel):
    unpacked, names = wheel
    in_wheel = set()
    for n in names:
        if n.endswith(".py") and n.startswith("eqfpga/"):
            parts = n[:-3].split("/")
            if parts[-1] == "__init__":
                parts = parts[:-1]
            in_wheel.add(".".join(parts))
    missing = source_modules() - in_wheel
    assert not missing, f"modules not in the wheel (list their packages in pyproject.toml): {sorted(missing)}"
    presets = sorted(p.name for p in (ROOT / "golden" / "presets").glob("*.json"))
    assert presets, "no presets in the source tree"
    assert sorted(n.split("/")[-1] for n in names if n.startswith("eqfpga/golden/presets/")
                  and n.endswith(".json")) == presets
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "eqfpga.tools.cli:main" in (unpacked / ep).read_text()


IMPORT_ALL = r"""
import importlib, json, sys
target = sys.argv[1]
modules = json.loads(sys.argv[2])
# drop the editable install's finders, put the unpacked wheel first
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in (getattr(f, "__module__", "") or "").lower()
                    and "editable" not in type(f).__module__.lower() and "editable" not in repr(f).lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path[:] = [target] + [p for p in sys.path if "__editable__" not in p and p not in ("", ".")]
sys.path_importer_cache.clear()
importlib.invalidate_caches()
assert not [m for m in sys.modules if m == "eqfpga" or m.startswith("eqfpga.")]
bad = {}
for name in modules:
    try:
        mod = importlib.import_module(name)
    except Exception as e:                     # report every failure, not only the first
        bad[name] = f"import failed: {type(e).__name__}: {e}"
        continue
    f = getattr(mod, "__file__", None) or ""
    if not f.startswith(target):
        bad[name] = f"imported from {f!r}, not from the wheel"
from eqfpga.golden.config import load_config, preset_names
names = preset_names()
for n in names:
    load_config(n)
print(json.dumps({"bad": bad, "presets": names}))
"""


def test_every_module_imports_from_the_unpacked_wheel(wheel, tmp_path):
    unpacked, _ = wheel
    import json
    mods = sorted(source_modules())
    res = subprocess.run([sys.executable, "-c", IMPORT_ALL, str(unpacked), json.dumps(mods)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": "", "PYTHONSAFEPATH": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["bad"] == {}, out["bad"]
    assert sorted(out["presets"]) == sorted(p.stem for p in (ROOT / "golden" / "presets").glob("*.json"))


def bare_imports(path: Path, packages=PACKAGES) -> list:
    """(line, name) of every import of a package folder by its bare name (``import golden``), at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in packages]
    return sorted(found)


def test_package_folders_match_the_tree():
    """Every top-level package folder is in pyproject.toml (else the wheel and these tests miss it)."""
    assert {"golden", "hdl", "sim", "boards", "tools"} <= set(PACKAGES)
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert on_disk == set(PACKAGES), f"package folders {sorted(on_disk)}, pyproject.toml maps {sorted(PACKAGES)}"


def test_no_bare_folder_imports():
    """`import golden` works only from the repository root; installed code must say eqfpga.golden."""
    files = [p for pkg in PACKAGES + ("tests",) for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts]
    assert len(files) > 10
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in files for line, name in bare_imports(p)]
    assert not bad, bad


def test_bare_import_detector_works(tmp_path):
    p = ROOT / "golden" / "__init__.py"
    assert bare_imports(p) == []
    q = tmp_path / "x.py"
    q.write_text(textwrap.dedent("""
        import os, golden.config
        from hdl import core
        from .golden import x
        from . import golden
        from eqfpga.golden import config
        def f():
            import tools
        class C:
            def g(self):
                from sim.verify import verify
    """))
    assert bare_imports(q) == [(2, "golden.config"), (3, "hdl"), (8, "tools"), (11, "sim.verify")]
    assert bare_imports(q, packages=("bench",)) == []
    q.write_text("import bench.speed\n")
    assert bare_imports(q, packages=PACKAGES + ("bench",)) == [(1, "bench.speed")]


def torch_free_modules():
    mods = ["eqfpga.golden", "eqfpga.golden.config", "eqfpga.golden.fixedpoint", "eqfpga.hdl"]
    return mods + sorted(m for m in source_modules() if m.startswith("eqfpga.hdl."))


@pytest.mark.parametrize("module", torch_free_modules())
def test_imports_without_torch(module, import_without):
    res = import_without("torch", module)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_torch_block_catches_torch_users(import_without):
    res = import_without("torch", "eqfpga.golden.float_model")
    assert res.returncode != 0 and "torch is blocked" in res.stderr
