"""Read the fixtures the official code wrote (scripts/upstream_fixtures/, tests/fixtures/upstream/<family>)
and compare with them. Nothing here imports upstream code."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent / "fixtures" / "upstream"

# The fixtures were written at 2 torch threads (the makers' machine has 2 cores; the makers now pin it,
# scripts/upstream_fixtures/common.py THREADS, and write it in the manifest). A conv or GEMM splits its
# reductions by thread, so the thread count moves the last bits: at 1 or 3 threads the VAE's uint8 decode
# (the same diffusers code on both sides) flips pixels and TiTok's pixel decoder is 4e-5 off (one of the
# two at 4). The tests run at this count: ``pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)``.
FIXTURE_THREADS = 2

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


def assert_logits_match_full_and_cached(model, ref: dict[str, torch.Tensor], length: int) -> None:
    """An AR model's logits for the fixture's class and its null condition over the fixture's codes,
    through the full forward and through the KV cache (prefill, then one ``decode_step`` a token), against
    the official model's; the fixture keeps every 4th position and the last (``ref["positions"]``)."""
    cond = model.condition_tokens(ref["labels"])
    for name, c in (("cond", cond), ("null", model.null_condition_tokens(cond))):
        with torch.no_grad():
            full = model(torch.cat([c, ref["codes_in"]], 1))
            model.reset_cache(1)
            steps = [model.prefill(c)]
            for pos in range(1, length):
                steps.append(model.decode_step(ref["codes_in"][:, pos - 1], torch.tensor([pos]), length))
        at = ref["positions"]
        assert_rel_close(full[:, at], ref[f"logits_full_{name}"], what=f"full {name}")
        assert_rel_close(torch.stack(steps, 1)[:, at], ref[f"logits_cached_{name}"], what=f"cached {name}")
