"""One full-size AR step: AliTok-B (177M, random weights, official architecture), batch 2 with CFG
(4 rows), one cached decode step at the middle position of the 273-token sequence, fp32: PyTorch's
own Linear (aten) and oneDNN on packed weights, each with SDPA, and packed with the C decode-attention
kernel (ARGenerator's CPU default). Run with `make bench`."""

import contextlib

import pytest
import torch

from harness.nn.kernels import decode_attention, packed_linear
from harness.nn.layers.attention import set_decode_kernel
from harness.speed.timing import synchronize

pytestmark = pytest.mark.bench

BATCH, POS = 2, 137


@pytest.fixture(scope="module")
def model():
    from alitok.generator import PRESETS, build

    # the AR model alone (what `alitok_b(random_weights=True)` builds, without its tokenizer's memory)
    return build(PRESETS["alitok-b"].config, generator=torch.Generator().manual_seed(0)).eval()


@pytest.mark.parametrize("kernels", ["aten", "onednn-packed", "onednn-packed-c-decode"])
def test_bench_alitok_b_decode_step_batch2_cfg(benchmark, model, kernels):
    rows = 2 * BATCH
    device = model.embeddings.weight.device
    linear = "aten" if kernels == "aten" else "onednn-packed"
    attention = "c" if kernels.endswith("c-decode") else "sdpa"  # forced: "auto" is the machine's choice
    if linear == "onednn-packed" and not packed_linear.available(device, torch.float32):
        pytest.skip("no oneDNN packed linear on this device")
    if attention == "c" and decode_attention.kernel_name("c", device) != "c-decode":
        pytest.skip(f"no C decode-attention kernel here: {decode_attention.build_error()}")
    packed = packed_linear.PackedLinears(model).active() if linear != "aten" else contextlib.nullcontext()
    set_decode_kernel(model, attention)
    with torch.inference_mode(), packed:
        model.reset_cache(rows)
        model.prefill(torch.full((rows, 1), model.cfg.null_class_id, device=device))
        token, pos = torch.zeros(rows, dtype=torch.long, device=device), torch.tensor([POS], device=device)

        def step():
            out = model.decode_step(token, pos)
            synchronize(device)
            return out

        logits = benchmark.pedantic(step, rounds=10, warmup_rounds=2)
    # bound by streaming the 0.7 GB of weights: the gate judges it in units of the stream calibration
    benchmark.extra_info.update(
        {
            "model": "alitok-b random weights",
            "rows": rows,
            "position": POS,
            "dtype": "fp32",
            "linear": linear,
            "attention": attention,
            "calibration": "stream",
        }
    )
    assert logits.shape == (rows, model.cfg.codebook_size) and torch.isfinite(logits).all()
