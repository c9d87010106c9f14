"""Shared by the per-family fixture scripts: import an upstream checkout, give its modules seeded
random weights, and write inputs/outputs as safetensors with a manifest saying what produced them.

Each family script runs in its own process (`python -m scripts.upstream_fixtures.make_<family>`),
because upstream repositories reuse top-level module names (`models`, `transport`, `modeling`).
Nothing here is imported by the project or its tests: tests read only the written files.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "upstream"


def parse_args(family: str, default_checkout: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"write the {family} fixtures from its official code")
    p.add_argument(
        "--upstream",
        type=Path,
        required=True,
        help=f"folder of upstream checkouts (this script reads UPSTREAM/{default_checkout})",
    )
    p.add_argument("--out", type=Path, default=FIXTURES / family)
    args = p.parse_args()
    args.checkout = (args.upstream / default_checkout).resolve()
    if not args.checkout.is_dir():
        sys.exit(f"error: {args.checkout}: no upstream checkout there")
    return args


def import_upstream(checkout: Path) -> str:
    """Put the checkout first on sys.path; returns its commit (refuses a dirty tree's tracked changes)."""
    sys.path.insert(0, str(checkout))
    return git_commit(checkout)


def git_commit(checkout: Path) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@torch.no_grad()
def seed_weights_(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Every floating parameter and buffer drawn from N(0, std) in state_dict order from one seed
    (norm scales around 1, so activations stay in range); integer buffers are left as built."""
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict(keep_vars=True).items():
        if not t.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)
        is_norm_scale = t.dim() == 1 and leaf == "weight" and any(k in name.lower() for k in ("norm", "ln", "bn"))
        t.copy_(1.0 + std * noise if is_norm_scale else std * noise)
    return module


def write_fixture(
    out_dir: Path,
    name: str,
    tensors: dict[str, torch.Tensor],
    *,
    upstream: str,
    commit: str,
    script: str,
    notes: dict | None = None,
) -> Path:
    """`<out_dir>/<name>.safetensors` plus an entry in `<out_dir>/manifest.json` (one per fixture)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.safetensors"
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    path.chmod(0o644)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest[name] = {
        "upstream": upstream,
        "commit": commit,
        "script": script,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "tensors": sorted(tensors),
        **({"notes": notes} if notes else {}),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def install_torchvision_shim() -> None:
    """Upstream modules import timm/torchvision; on the CPU torch wheel that import needs the project's shim."""
    sys.path.insert(0, str(REPO_ROOT))
    from harness.core import _tv_shim

    _tv_shim.install()


@contextlib.contextmanager
def sized(cls: type, **sizes: int):
    """Build an official class whose sizes are hard-coded in ``__init__`` (``self.width = 768``) at
    smaller sizes: while active, assigning one of the named int attributes stores the given value
    instead. The class's own code builds the modules and runs forward unchanged."""
    had_own = "__setattr__" in cls.__dict__
    parent = next(c.__dict__["__setattr__"] for c in cls.__mro__ if "__setattr__" in c.__dict__)

    def setattr_(self, name, value):
        if name in sizes and isinstance(value, int) and not isinstance(value, bool):
            value = sizes[name]
        parent(self, name, value)

    cls.__setattr__ = setattr_
    try:
        yield
    finally:
        if had_own:
            cls.__setattr__ = parent
        else:
            del cls.__setattr__


def write_key_list(out_dir: Path, name: str, build_on_meta) -> dict:
    """Key names, shapes and parameter count of a full-size released configuration, built on the
    meta device (no memory): ``<out_dir>/<name>.keys.json``."""
    with torch.device("meta"):
        module = build_on_meta()
    sd = module.state_dict()
    entry = {
        "keys": {k: list(v.shape) for k, v in sd.items()},
        "num_params": sum(p.numel() for p in module.parameters()),
        "num_state_dict_elements": sum(v.numel() for v in sd.values()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.keys.json").write_text(json.dumps(entry, indent=0, sort_keys=True) + "\n")
    return entry


def save_released(path: Path, obj) -> Path:
    """A ``torch.save`` file as the official release ships it (``.pt`` / ``.pth`` / ``.bin``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, str(path))
    return path
