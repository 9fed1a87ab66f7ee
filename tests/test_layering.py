"""The layers import only earlier layers: golden -> hdl -> sim -> boards -> bench -> tools.

Every import in every module counts, at any depth (function-level imports too), with relative imports
resolved and ``importlib.import_module("...")`` of a constant name included. The modules are the
``.py`` files of the folders ``pyproject.toml`` maps to ``eqfpga.<layer>`` (a layer with no folder yet,
such as bench before it exists, has no modules and is checked once it appears there).
"""
import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("golden", "hdl", "sim", "boards", "bench", "tools")     # each may import only earlier ones
# The gateware and the spec it reads never need torch (the board flow runs without it).
TORCH_FREE = ("eqfpga.hdl", "eqfpga.golden", "eqfpga.golden.config", "eqfpga.golden.fixedpoint")


def package_folders(root=ROOT) -> dict:
    """{layer: folder} of the top-level subpackages ``eqfpga.<layer>`` pyproject.toml maps to folders."""
    setup = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name.split(".")[1]: root / folder for name, folder in setup["package-dir"].items()
            if name.startswith("eqfpga.") and name.count(".") == 1}


def modules_under(layer: str, folder: Path) -> dict:
    """{module name: file} of every .py file under ``folder``, as ``eqfpga.<layer>.<...>``."""
    mods = {}
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder).with_suffix("")
        if "__pycache__" in rel.parts:
            continue
        parts = [p for p in rel.parts if p != "__init__"] if rel.name == "__init__" else list(rel.parts)
        mods[".".join(["eqfpga", layer] + parts)] = path
    return mods


def all_modules(root=ROOT) -> dict:
    mods = {}
    for layer, folder in package_folders(root).items():
        mods.update(modules_under(layer, folder))
    return mods


def imported_names(path: Path, module: str) -> list:
    """(line, absolute dotted name) of every import in ``path``, the file of ``module``.

    ``from a.b import c`` gives ``a.b.c`` (c may be a module or a name in a.b: the layer is the same).
    """
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the top package")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found += [(node.lineno, base if a.name == "*" else f"{base}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) in ("import_module", "__import__"))):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def layer_of(name: str):
    """``eqfpga.<layer>...`` -> layer; None for names outside the package (and for ``eqfpga`` itself)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "eqfpga" and len(parts) > 1 else None


def layer_violations(modules: dict) -> list:
    """Every import of a later layer (or of an unknown one) by the given {module: file}."""
    bad = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        for line, name in imported_names(path, module):
            dep = layer_of(name)
            if dep is None or dep == own:
                continue
            if dep not in LAYERS or own not in LAYERS:
                bad.append(f"{path}:{line}: {module} imports {name}: add the layer to LAYERS in its place")
            elif LAYERS.index(dep) > LAYERS.index(own):
                bad.append(f"{path}:{line}: {module} ({own}) imports {name} ({dep}, a later layer)")
    return bad


def tools_importers(modules: dict) -> list:
    """Imports of eqfpga.tools (the CLI, the top) by any module outside it."""
    return [f"{path}:{line}: {module} imports {name}"
            for module, path in sorted(modules.items()) if layer_of(module) != "tools"
            for line, name in imported_names(path, module) if layer_of(name) == "tools"]


def owning_module(name: str, known) -> str:
    """The longest prefix of ``name`` that is a known module (``eqfpga.golden.EPConfig`` -> eqfpga.golden)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return name


def is_torch_free(module: str) -> bool:
    return module in TORCH_FREE or module.startswith("eqfpga.hdl.")


def torch_violations(modules: dict, known=()) -> list:
    """Imports of torch, or of a module that may import it, by a module that must stay torch-free."""
    known = set(modules) | set(known)
    bad = []
    for module, path in sorted(modules.items()):
        if not is_torch_free(module):
            continue
        for line, name in imported_names(path, module):
            if name == "torch" or name.startswith("torch."):
                bad.append(f"{path}:{line}: {module} imports {name}")
            elif layer_of(name) and not is_torch_free(owning_module(name, known)):
                bad.append(f"{path}:{line}: {module} imports {name}, which is not torch-free")
    return bad


# ---- the tree ------------------------------------------------------------------------------------
def test_every_layer_package_is_known_and_the_tree_is_found():
    folders = package_folders()
    assert set(folders) <= set(LAYERS), f"subpackages outside LAYERS: {sorted(set(folders) - set(LAYERS))}"
    assert {"golden", "hdl", "sim", "boards", "tools"} <= set(folders)
    for layer in LAYERS:                      # a layer folder on disk is in pyproject.toml, and so checked
        if (ROOT / layer / "__init__.py").is_file():
            assert layer in folders, f"{layer}/ is a package but pyproject.toml does not map eqfpga.{layer}"
    mods = all_modules()
    for layer in folders:
        assert any(layer_of(m) == layer for m in mods), f"no modules found for {layer}"
    assert {"eqfpga.hdl.core", "eqfpga.golden.config", "eqfpga.tools.cli"} <= set(mods)


def test_no_layer_imports_a_later_one():
    bad = layer_violations(all_modules())
    assert not bad, "\n".join(bad)


def test_nothing_imports_the_tools():
    bad = tools_importers(all_modules())
    assert not bad, "\n".join(bad)


def test_gateware_and_spec_never_import_torch():
    """Static, so a torch import inside a function counts too (test_packaging checks import time)."""
    mods = all_modules()
    assert {m for m in mods if is_torch_free(m)} >= {"eqfpga.hdl.core", "eqfpga.golden.config"}
    bad = torch_violations(mods)
    assert not bad, "\n".join(bad)


# ---- the checkers can fail -----------------------------------------------------------------------
def test_checkers_catch_bad_imports(tmp_path):
    """A temporary golden and hdl module with bad imports, through the same checker functions."""
    (tmp_path / "golden").mkdir()
    (tmp_path / "hdl").mkdir()
    bad_golden = tmp_path / "golden" / "bad.py"
    bad_golden.write_text(
        "import os\n"                                          # 1  not ours
        "from eqfpga.golden import config\n"                   # 2  same layer
        "from ..hdl import core\n"                             # 3  golden -> hdl, relative
        "def f():\n"
        "    import eqfpga.tools.cli\n"                        # 5  function level, and the tools
        "    from eqfpga import sim\n"                         # 6  from the package root
        "    return importlib.import_module('eqfpga.boards.build')\n"   # 7  dynamic
        "from . import fixedpoint\n"                           # 8  same layer, relative
        "from eqfpga.nowhere import x\n"                       # 9  an unknown layer
    )
    bad_hdl = tmp_path / "hdl" / "__init__.py"
    bad_hdl.write_text(
        "from eqfpga.golden.config import EPConfig\n"          # 1  torch-free: fine
        "from ..golden import EPConfig\n"                      # 2  the golden package: torch-free
        "from ..golden.fixed_model import FixedEP\n"           # 3  the torch model
        "def g():\n"
        "    import torch.nn\n"                                # 5  torch, in a function
        "from .core import EPCore\n"                           # 6  same layer
    )
    mods = {"eqfpga.golden.bad": bad_golden, "eqfpga.hdl": bad_hdl}
    found = layer_violations(mods)
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in found] == ["3", "5", "6", "7", "9"], found
    assert "eqfpga.hdl.core (hdl, a later layer)" in found[0]
    assert "add the layer to LAYERS" in found[4]
    tools = tools_importers(mods)
    assert len(tools) == 1 and tools[0].endswith("imports eqfpga.tools.cli")
    torch_bad = torch_violations(mods, known=all_modules())
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in torch_bad] == ["3", "5"], torch_bad
    assert "eqfpga.golden.fixed_model.FixedEP, which is not torch-free" in torch_bad[0]
    # the same files are fine where they belong: tools may import everything
    assert layer_violations({"eqfpga.tools.bad": bad_golden}) == [
        f"{bad_golden}:9: eqfpga.tools.bad imports eqfpga.nowhere.x: add the layer to LAYERS in its place"]


def test_a_new_layer_folder_is_picked_up(tmp_path):
    """bench (or any layer) is checked as soon as pyproject.toml maps it."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"eqfpga.golden" = "golden"\n"eqfpga.bench" = "bench"\n')
    (tmp_path / "golden").mkdir()
    (tmp_path / "golden" / "__init__.py").write_text("")
    (tmp_path / "bench" / "runs").mkdir(parents=True)
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "runs" / "speed.py").write_text("from eqfpga.tools import cli\n")
    mods = all_modules(tmp_path)
    assert set(mods) == {"eqfpga.golden", "eqfpga.bench", "eqfpga.bench.runs.speed"}
    assert layer_violations(mods) == [f"{tmp_path / 'bench' / 'runs' / 'speed.py'}:1: eqfpga.bench.runs.speed "
                                      "(bench) imports eqfpga.tools.cli (tools, a later layer)"]
