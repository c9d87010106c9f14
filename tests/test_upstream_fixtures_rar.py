"""RAR and MaskGIT-VQGAN against fixtures the official code wrote (scripts/upstream_fixtures/make_rar.py
runs bytedance/1d-tokenizer ``modeling/rar.py`` and ``modeling/modules/maskgit_vqgan.py`` with seeded
random weights at small sizes), loaded through the registry factories from the released layouts
(``maskgit-vqgan-imagenet-f16-256.bin``, ``rar_*.bin``: plain state dicts)."""

import pytest
import torch
from upstream_fixture_io import (
    FIXTURE_THREADS,
    assert_equal,
    assert_logits_match_full_and_cached,
    assert_rel_close,
    folder,
    keys,
    load,
)

from harness.core.registry import generators, load_plugins, tokenizers
from harness.nn.samplers.ar_sampling import cfg_scales

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

PIXEL = {
    "hidden_channels": 32,
    "channel_mult": [1, 1, 1],
    "num_res_blocks": 1,
    "z_channels": 32,
    "codebook_size": 256,
    "image_size": 64,
}
RAR = {"depth": 2, "width": 32, "num_heads": 2, "mlp_hidden": 128, "codebook_size": 256}


def _generator(name):
    load_plugins()
    return generators.get(name)(
        device="cpu",
        checkpoint=folder("rar") / "rar_ar.bin",
        tokenizer_checkpoint=folder("rar") / "maskgit-vqgan-imagenet-f16-256.bin",
        architecture=RAR,
        tokenizer_architecture=PIXEL,
    )


def test_maskgit_vqgan_codes_and_pixels_match_the_official_tokenizer():
    load_plugins()
    tok = tokenizers.get("maskgit-vqgan")(
        device="cpu", checkpoint=folder("rar") / "maskgit-vqgan-imagenet-f16-256.bin", architecture=PIXEL
    )
    ref = load("rar", "tokenizer")
    assert_equal(tok.encode(ref["images"]), ref["codes"], "codes")
    assert_rel_close(tok.decode_float(ref["decode_codes"][:2]), ref["decoded_float_first2"], what="decoded float")
    assert_equal(tok.decode(ref["decode_codes"]), ref["decoded_uint8"], "decoded uint8")


def test_rar_logits_match_the_official_model_full_and_cached():
    assert_logits_match_full_and_cached(_generator("rar-b").model, load("rar", "rar_logits"), 256)


@pytest.mark.parametrize("size", ["b", "l"])
def test_cfg_schedule_and_two_batches_of_tokens_match_the_official_generate(size):
    gen = _generator(f"rar-{size}")
    ref = load("rar", f"sample_{size}")
    s = gen.default_sampling
    # the schedule divided by the temperature, as upstream's generate computed it (float32)
    assert_equal(
        (cfg_scales(256, s) / s.temperature).view(torch.int32),
        ref["cfg_scales_over_temperature"].view(-1).view(torch.int32),
        "cfg scales / temperature (bits)",
    )
    stream = torch.Generator().manual_seed(42)  # sample_imagenet_rar.py: torch.manual_seed(42 + rank)
    for i in range(2):
        assert_equal(gen.generate_codes(ref[f"labels_{i}"], stream), ref[f"tokens_{i}"], f"tokens of batch {i}")


def test_full_size_configs_have_the_released_keys():
    from baselines.maskgit_vqgan import build
    from baselines.rar import build as build_rar
    from baselines.rar import rar_config

    for size in ("b", "l", "xl", "xxl"):
        ref = keys("rar", f"rar_{size}.bin")
        sd = build_rar(rar_config(size), "meta").state_dict()
        assert {k: list(v.shape) for k, v in sd.items()} == ref["keys"], size
    ref = keys("rar", "maskgit-vqgan-imagenet-f16-256.bin")
    assert {k: list(v.shape) for k, v in build(device="meta").state_dict().items()} == ref["keys"]
