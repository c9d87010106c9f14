"""Speed guard for the shared AR sampler: static-KV-cache sampling of the tiny AliTok geometry
(73 tokens, doubled CFG batch) against the naive full-recompute path. Run with `make bench`."""
import pytest
import torch

from harness.interfaces import ARSampling
from harness.nn.ar_sampling import ar_sample, ar_sample_naive

from alitok.generator import ARConfig, build

pytestmark = pytest.mark.bench

CFG = ARConfig(depth=4, width=128, num_heads=4, codebook_size=512, num_classes=11, num_prefix_tokens=9, grid=8)
PARAMS = ARSampling(cfg_scale=3.0, cfg_schedule="power-cosine", cfg_power=1.0)


@pytest.fixture(scope="module")
def model():
    return build(CFG, generator=torch.Generator().manual_seed(0)).eval()


def _inputs(batch):
    cond = CFG.class_ids(torch.arange(batch) % CFG.num_classes)[:, None]
    return cond, torch.full_like(cond, CFG.null_class_id)


@pytest.mark.parametrize("path", ["cached", "naive"])
def test_bench_tiny_sampling_batch16(benchmark, model, path):
    cond, uncond = _inputs(16)
    fn = ar_sample if path == "cached" else ar_sample_naive
    out = benchmark.pedantic(lambda: fn(model, cond, CFG.num_tokens, PARAMS, torch.Generator().manual_seed(0), uncond=uncond),
                             rounds=3, warmup_rounds=1)
    benchmark.extra_info.update({"batch": 16, "tokens": CFG.num_tokens, "cfg": "doubled batch", "dtype": "fp32"})
    assert out.shape == (16, CFG.num_tokens)
