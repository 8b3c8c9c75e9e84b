"""Layering rules: core <- models <- analysis <- app | cli, and no Qt below app (the contracts live in
pyproject.toml's [tool.importlinter] and `lint-imports` checks them); app/ holds the Qt code."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph", "shiboken6")
HEADLESS_PACKAGES = ("core", "models", "analysis")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_and_models_have_no_qt_imports_statically() -> None:
    offenders = []
    for pkg in HEADLESS_PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            bad = _imports(path) & set(QT_MODULES)
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_importing_core_and_models_loads_no_qt_at_runtime() -> None:
    code = (
        "import sys, pkgutil, importlib, core, models, analysis\n"
        "for pkg in (core, models, analysis):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"Qt modules loaded by core/models: {out.stdout}"


def _lint_imports() -> str | None:
    found = shutil.which("lint-imports")
    if found:
        return found
    beside = Path(sys.executable).with_name("lint-imports")  # the venv's, when it is not on PATH
    return str(beside) if beside.exists() else None


def test_import_contracts_hold() -> None:
    """`lint-imports` exits 0: every contract in pyproject.toml's [tool.importlinter] is kept."""
    tool = _lint_imports()
    if tool is None:
        pytest.skip("import-linter is not installed (pip install import-linter==2.17, the `test` extra)")
    out = subprocess.run([tool, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("a,b", [("models.data", "models.data_mmsa"),
                                 ("models.recipes.train_all", "models.recipes.reencode_cache")])
def test_no_import_cycle_between(a: str, b: str) -> None:
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the `test` extra)")
    graph = grimp.build_graph("models", cache_dir=None)
    assert not (graph.chain_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)), (a, b)
