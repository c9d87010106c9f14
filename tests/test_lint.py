"""The tree is lint-clean, formatted, and carries no dead code: `ruff check`, `ruff format --check` and
vulture (settings in pyproject.toml) over every Python folder, so `make test` fails on the first slip.

The tools are the test extra's pinned ones, run as ``python -m`` of this interpreter (a fresh venv finds its
own). Vulture cannot see the registry's lazy ``"module:attr"`` targets (harness/core/plugins.py): they are
read here and handed to it as used, so a factory the registry names is never reported and a factory it no
longer names is.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.plugins import BUILTIN

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("harness", "alitok", "baselines", "scripts", "tests")
TIMEOUT_S = 300  # a hang guard for a slow shared machine; each tool takes seconds


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


def _tool(module: str) -> None:
    if _run(module, "--version").returncode != 0:
        pytest.fail(f"{module} is not installed in {sys.executable}'s environment: pip install -e '.[test]'")


def registry_targets() -> list[str]:
    """Every attribute a built-in registry entry names (``"baselines.plugin_ar:vq_8"`` -> ``vq_8``)."""
    return sorted({target.split(":")[1] for entries in BUILTIN.values() for target, _help in entries.values()})


def test_ruff_check():
    _tool("ruff")
    r = _run("ruff", "check", "--no-fix", *FOLDERS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format():
    _tool("ruff")
    r = _run("ruff", "format", "--check", *FOLDERS)
    assert r.returncode == 0, "not ruff-formatted (run `ruff format`):\n" + r.stdout + r.stderr


def test_no_dead_code(tmp_path):
    _tool("vulture")
    used = tmp_path / "registry_targets.py"  # a vulture allow-list: a bare name counts as a use
    used.write_text("".join(f"{name}\n" for name in registry_targets()))
    r = _run("vulture", *FOLDERS, str(used))
    assert r.returncode == 0, "dead code (delete it, or see [tool.vulture] in pyproject.toml):\n" + r.stdout + r.stderr


def test_registry_targets_read_from_the_table():
    # the allow-list above is only as good as this reading of the table: entries of every kind appear
    names = registry_targets()
    assert {"vq_8", "IMAGENET256_GFID50K", "demo", "train_stage1"} <= set(names)
