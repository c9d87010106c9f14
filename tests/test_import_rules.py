"""DESIGN.md's import rules, checked on the source: every arrow points down.

- The engine (``harness``) never imports ``alitok`` or ``baselines``; it reaches models through the registry.
- ``alitok`` and ``baselines`` take from ``harness`` only the bottom floor (interfaces, registry, nn,
  config, data, errors) and never import each other.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOTTOM_FLOOR = ("harness.interfaces", "harness.registry", "harness.nn", "harness.config", "harness.data",
                "harness.errors", "harness.io")


def _imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
    return out


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", ["harness"])
def test_engine_never_imports_plugin_packages(package):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in _sources(package)
           for line, name in _imports(p) if _top(name) in ("alitok", "baselines")]
    assert not bad, bad


@pytest.mark.parametrize("package, other", [("alitok", "baselines"), ("baselines", "alitok")])
def test_plugin_packages_use_only_the_bottom_floor(package, other):
    bad = []
    for p in _sources(package):
        for line, name in _imports(p):
            if _top(name) == other or (_top(name) == "harness" and not name.startswith(BOTTOM_FLOOR)):
                bad.append(f"{p.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, bad


def test_the_checker_sees_imports():
    # guards against a checker that passes because it parses nothing
    names = {n for p in _sources("alitok") for _, n in _imports(p)}
    assert "harness.interfaces" in names and "harness.nn.checkpoint" in names
