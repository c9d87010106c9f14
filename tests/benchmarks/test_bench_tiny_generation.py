"""Tiny AliTok end to end: class labels -> uint8 pixels (AR sampling with CFG + decode), batch 16,
through the Generator plugin as `alitok-bench bench` times it. Run with `make bench`."""

import pytest
import torch

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def gen():
    from alitok.plugin import tiny_generator

    return tiny_generator(device="cpu")


def test_bench_tiny_generate_batch16(benchmark, gen):
    labels = torch.arange(16) % gen.num_classes
    images = benchmark.pedantic(
        lambda: gen.generate(labels, torch.Generator().manual_seed(0)), rounds=9, warmup_rounds=1
    )
    benchmark.extra_info.update({"batch": 16, "cfg_scale": gen.default_sampling.cfg_scale, "dtype": "fp32"})
    assert images.dtype == torch.uint8 and images.shape == (16, gen.image_size, gen.image_size, 3)
