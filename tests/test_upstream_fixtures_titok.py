"""TiTok-S-128's layout against fixtures the official code wrote (scripts/upstream_fixtures/make_titok.py
runs bytedance/1d-tokenizer ``modeling/titok.py`` with seeded random weights at small sizes: ViT
width 32, a 3-level MaskGIT pixel decoder), loaded through the registry factory from the released
layout (``tokenizer_titok_s128.bin``, a plain state dict)."""

import pytest
from upstream_fixture_io import FIXTURE_THREADS, assert_equal, assert_rel_close, folder, keys, load

from harness.core.registry import load_plugins, tokenizers

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

ARCH = {
    "image_size": 32,
    "patch_size": 4,
    "enc_width": 32,
    "enc_depth": 1,
    "enc_heads": 2,
    "dec_width": 32,
    "dec_depth": 1,
    "dec_heads": 2,
    "codebook_size": 256,
    "pixel": {
        "hidden_channels": 32,
        "channel_mult": [1, 1, 1],
        "num_res_blocks": 1,
        "z_channels": 32,
        "codebook_size": 1024,
        "image_size": 32,
    },
}


def test_titok_codes_and_pixels_match_the_official_tokenizer():
    load_plugins()
    tok = tokenizers.get("titok-s-128")(
        device="cpu", checkpoint=folder("titok") / "tokenizer_titok_s128.bin", architecture=ARCH
    )
    ref = load("titok", "tokenizer")
    assert_equal(tok.encode(ref["images"]), ref["codes"], "codes")
    assert_rel_close(tok.decode_float(ref["decode_codes"]), ref["decoded_float"], what="decoded float")
    assert_equal(tok.decode(ref["decode_codes"]), ref["decoded_uint8"], "decoded uint8")


def test_full_size_titok_s_128_has_the_released_keys():
    from baselines.titok import TITOK_CONFIGS, build

    ref = keys("titok", "tokenizer_titok_s128.bin")
    sd = build(TITOK_CONFIGS["titok-s-128"], "meta").state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == ref["keys"]
