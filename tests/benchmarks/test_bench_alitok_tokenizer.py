"""Speed guard for the tiny AliTok tokenizer: decode (codes -> uint8) and encode of a batch of 64
at 32 px, fp32, CPU or the given device. Run with `make bench`."""

import pytest
import torch

from alitok.tokenizer import AliTokTokenizer, build, config_from_dict
from harness.core.config import load_yaml

pytestmark = pytest.mark.bench

BATCH = 64


@pytest.fixture(scope="module")
def tok():
    from pathlib import Path

    cfg = config_from_dict(load_yaml(Path(__file__).resolve().parents[2] / "alitok/configs/tiny_tokenizer.yaml"))
    return AliTokTokenizer(build(cfg, "stage2", generator=torch.Generator().manual_seed(0)))


def test_bench_tiny_tokenizer_decode_batch64(benchmark, tok):
    codes = torch.randint(0, tok.codebook_size, (BATCH, tok.num_tokens), generator=torch.Generator().manual_seed(0))
    out = benchmark.pedantic(lambda: tok.decode(codes), rounds=11, warmup_rounds=1)
    benchmark.extra_info.update({"batch": BATCH, "tokens": tok.num_tokens, "dtype": "fp32"})
    assert out.shape == (BATCH, 32, 32, 3)


def test_bench_tiny_tokenizer_encode_batch64(benchmark, tok):
    images = torch.randint(0, 256, (BATCH, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = benchmark.pedantic(lambda: tok.encode(images), rounds=11, warmup_rounds=1)
    benchmark.extra_info.update({"batch": BATCH, "dtype": "fp32"})
    assert out.shape == (BATCH, tok.num_tokens)
