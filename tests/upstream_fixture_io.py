"""Read the fixtures the official code wrote (scripts/upstream_fixtures/, tests/fixtures/upstream/<family>)
and compare with them. Nothing here imports upstream code."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent / "fixtures" / "upstream"

# Floats: the project runs the same fp32 math in another operation order (packed Linear layers,
# fused attention, another reduction order); each reordered op moves a value by a few ulp
# (~1e-7 relative), and a few dozen layers add up to ~1e-6, so 1e-5 of the tensor's scale is the bound.
REL = 1e-5


def folder(family: str) -> Path:
    return ROOT / family


def load(family: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(folder(family) / f"{name}.safetensors"))


def manifest(family: str) -> dict:
    return json.loads((folder(family) / "manifest.json").read_text())


def keys(family: str, name: str) -> dict:
    return json.loads((folder(family) / f"{name}.keys.json").read_text())


def assert_rel_close(ours: torch.Tensor, ref: torch.Tensor, rel: float = REL, what: str = "") -> None:
    """max |ours - ref| <= rel * max |ref| (shapes equal)."""
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
    ours, ref = ours.double().cpu(), ref.double().cpu()
    err, scale = (ours - ref).abs().max().item(), ref.abs().max().item()
    assert err <= rel * scale, f"{what}: max abs error {err:.3g} > {rel} x {scale:.3g}"


def assert_equal(ours: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(ref.shape)}"
    diff = (ours.cpu().long() != ref.long()).sum().item()
    assert diff == 0, f"{what}: {diff} of {ref.numel()} values differ"
