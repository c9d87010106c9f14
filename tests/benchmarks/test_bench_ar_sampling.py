"""Speed guard for the shared AR sampler: static-KV-cache sampling of the tiny AliTok geometry
(73 tokens, doubled CFG batch) against the naive full-recompute path, fp32 against bf16 (weights
cast once, and the former autocast path), bucketed attention against the full cache. Run with
`make bench`. The full-size AliTok-B figures: python -m harness.speed.ar_floor_report."""

import copy

import pytest
import torch

from alitok.generator import ARConfig, build
from harness.core.interfaces import ARSampling
from harness.nn.samplers.ar_sampling import ar_sample, ar_sample_naive

pytestmark = pytest.mark.bench

CFG = ARConfig(depth=4, width=128, num_heads=4, codebook_size=512, num_classes=11, num_prefix_tokens=9, grid=8)
PARAMS = ARSampling(cfg_scale=3.0, cfg_schedule="power-cosine", cfg_power=1.0)


@pytest.fixture(scope="module")
def model():
    return build(CFG, generator=torch.Generator().manual_seed(0)).eval()


def _inputs(batch):
    cond = CFG.class_ids(torch.arange(batch) % CFG.num_classes)[:, None]
    return cond, torch.full_like(cond, CFG.null_class_id)


PATHS = {
    "cached": lambda m, c, u, g: ar_sample(m, c, CFG.num_tokens, PARAMS, g, uncond=u),
    "cached-full-cache": lambda m, c, u, g: ar_sample(m, c, CFG.num_tokens, PARAMS, g, uncond=u, kv_bucket=10**6),
    "cached-bf16-autocast": lambda m, c, u, g: ar_sample(
        m, c, CFG.num_tokens, PARAMS, g, uncond=u, dtype=torch.bfloat16
    ),
    "naive": lambda m, c, u, g: ar_sample_naive(m, c, CFG.num_tokens, PARAMS, g, uncond=u),
}


@pytest.mark.parametrize("path", [*PATHS, "cached-bf16"])
def test_bench_tiny_sampling_batch16(benchmark, model, path):
    cond, uncond = _inputs(16)
    m, fn = (
        (copy.deepcopy(model).to(torch.bfloat16), PATHS["cached"]) if path == "cached-bf16" else (model, PATHS[path])
    )
    with torch.inference_mode():
        out = benchmark.pedantic(
            lambda: fn(m, cond, uncond, torch.Generator().manual_seed(0)), rounds=9, warmup_rounds=1
        )
    benchmark.extra_info.update(
        {
            "batch": 16,
            "tokens": CFG.num_tokens,
            "cfg": "doubled batch",
            "path": path,
            "threads": torch.get_num_threads(),
        }
    )
    assert out.shape == (16, CFG.num_tokens)
