"""AliTok against fixtures the official code wrote (scripts/upstream_fixtures/make_alitok.py runs
ali-vilab/alitok ``modeling/alitok.py`` and ``modeling/ar.py`` with seeded random weights at small
sizes). Everything is loaded through the registry factories from the released file layout
(``AliTok.pth``, ``alitok_*.bin``)."""

import contextlib

import pytest
import torch
from upstream_fixture_io import FIXTURE_THREADS, assert_equal, assert_rel_close, folder, keys, load

from harness.core.registry import generators, load_plugins, tokenizers
from harness.nn.kernels import decode_attention
from harness.nn.kernels.packed_linear import PackedLinears
from harness.nn.layers.attention import set_decode_kernel
from harness.nn.samplers.ar_sampling import ar_sample, cfg_scales, kv_length

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

TOKENIZER = {
    "encoder_width": 32,
    "encoder_layers": 1,
    "encoder_heads": 2,
    "decoder_width": 32,
    "decoder_layers": 1,
    "decoder_heads": 2,
    "codebook_size": 256,
}
AR = {"depth": 2, "width": 32, "num_heads": 2, "codebook_size": 256}
PRESET = {"b": "alitok-b", "xl": "alitok-xl"}


def _generator(name):
    load_plugins()
    return generators.get(name)(
        device="cpu",
        checkpoint=folder("alitok") / "alitok_ar.bin",
        tokenizer_checkpoint=folder("alitok") / "AliTok.pth",
        architecture=AR,
        tokenizer_architecture=TOKENIZER,
    )


def test_tokenizer_codes_and_pixels_match_the_official_tokenizer():
    load_plugins()
    tok = tokenizers.get("alitok")(device="cpu", checkpoint=folder("alitok") / "AliTok.pth", architecture=TOKENIZER)
    ref = load("alitok", "tokenizer")
    assert_equal(tok.encode(ref["images"]), ref["codes"], "codes")
    assert_rel_close(tok.decode_float(ref["codes"])[..., :64, :64], ref["decoded_float_crop"], what="decoded float")
    assert_equal(tok.decode(ref["codes"]), ref["decoded_uint8"], "decoded uint8")


@pytest.mark.parametrize("linear,attention", [("aten", "sdpa"), ("onednn-packed", "auto")])
def test_ar_logits_match_the_official_model_full_and_cached(linear, attention):
    # "onednn-packed" + "auto" (the C decode kernel, harness.nn.kernels.decode_attention): ARGenerator's CPU defaults
    if attention == "auto" and decode_attention.build_error():
        pytest.skip(f"no C compiler here: {decode_attention.build_error()}")
    model = _generator("alitok-b").model
    set_decode_kernel(model, attention)
    ref = load("alitok", "ar_logits")
    cond = model.condition_tokens(ref["labels"])
    for name, c in (("cond", cond), ("null", model.null_condition_tokens(cond))):
        packed = PackedLinears(model).active() if linear == "onednn-packed" else contextlib.nullcontext()
        with torch.no_grad(), packed:
            full = model(torch.cat([c, ref["codes_in"]], 1))
            model.reset_cache(1)
            steps = [model.prefill(c)]
            for pos in range(1, 273):  # the sampler's bucketed cache lengths
                steps.append(model.decode_step(ref["codes_in"][:, pos - 1], torch.tensor([pos]), kv_length(pos, 273)))
        at = ref["positions"]  # the fixture keeps every 4th position and the last
        assert_rel_close(full[:, at], ref[f"logits_full_{name}"], what=f"full {name}")
        assert_rel_close(torch.stack(steps, 1)[:, at], ref[f"logits_cached_{name}"], what=f"cached {name}")


@pytest.mark.parametrize("preset", ["b", "xl"])
def test_cfg_schedule_and_two_batches_of_tokens_match_the_official_generate(preset):
    gen = _generator(PRESET[preset])
    ref = load("alitok", f"sample_{preset}")
    # the schedule, value for value as upstream's generate computed it (float32, same ops: exact)
    assert_equal(
        cfg_scales(273, gen.default_sampling).view(torch.int32),
        ref["cfg_scales"].view(-1).view(torch.int32),
        "cfg scales (bits)",
    )
    stream = torch.Generator().manual_seed(gen.seed)  # sample_imagenet.py: torch.manual_seed(seed + rank)
    for i in range(2):
        assert_equal(gen.generate_codes(ref[f"labels_{i}"], stream), ref[f"tokens_{i}"], f"tokens of batch {i}")
    # upstream draws the label-dropout mask (rand_like) before the first token; skipping it shifts every draw
    model, cond = gen.model, gen.model.condition_tokens(ref["labels_0"])
    skipped = ar_sample(
        model,
        cond,
        273,
        gen.default_sampling,
        torch.Generator().manual_seed(gen.seed),
        uncond=model.null_condition_tokens(cond),
    )
    assert not torch.equal(skipped, ref["tokens_0"])


def test_full_size_configs_have_the_released_keys_and_parameter_counts():
    from alitok.generator import PRESETS, build
    from alitok.tokenizer import OFFICIAL
    from alitok.tokenizer import build as build_tokenizer

    for size in ("b", "l", "xl"):
        ref = keys("alitok", f"alitok_{size}.bin")
        sd = build(PRESETS[f"alitok-{size}"].config, device="meta").state_dict()
        assert {k: list(v.shape) for k, v in sd.items()} == ref["keys"]
        assert PRESETS[f"alitok-{size}"].num_params == ref["num_params"]
    ref = keys("alitok", "AliTok.pth")
    sd = build_tokenizer(OFFICIAL, device="meta").state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == ref["keys"]
