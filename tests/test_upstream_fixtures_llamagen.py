"""LlamaGen against fixtures the official code wrote (scripts/upstream_fixtures/make_llamagen.py runs
FoundationVision/LlamaGen ``vq_model.py``, ``gpt.py`` and ``generate.py`` with seeded random weights
at small sizes), loaded through the registry factories from the released layouts
(``vq_ds16_c2i.pt`` / ``c2i_*.pt``: ``{"model": state_dict}``; a training checkpoint with ``args``)."""

import pickle

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

from harness.core.interfaces import ARSampling
from harness.core.registry import generators, load_plugins, tokenizers
from harness.nn.checkpoints.checkpoint import CheckpointError

pytestmark = pytest.mark.torch_threads(FIXTURE_THREADS)

VQ = {"ch": 32, "ch_mult": [1, 1], "num_res_blocks": 1, "z_channels": 32, "codebook_size": 256, "image_size": 32}
GPT = {"depth": 2, "width": 32, "num_heads": 2, "vocab_size": 256}
# make_llamagen.py SAMPLINGS: sample_c2i.py's cfg_scale, cfg_interval, temperature, top_k, top_p, seed
SAMPLINGS = {
    "preset_b": (None, 0),  # the factory's preset: sample_c2i.py --cfg-scale 2.0 --top-k 0
    "filtered": (ARSampling(cfg_scale=1.75, cfg_interval=100, temperature=0.9, top_k=100, top_p=0.95), 7),
    "top_k": (ARSampling(cfg_scale=2.0, top_k=20), 3),
}


def _generator(gpt_file="c2i_gpt.pt"):
    load_plugins()
    return generators.get("llamagen-gpt-b")(
        device="cpu",
        checkpoint=folder("llamagen") / gpt_file,
        tokenizer_checkpoint=folder("llamagen") / "vq_ds16_c2i.pt",
        architecture=GPT,
        tokenizer_architecture=VQ,
    )


def test_vq_codes_and_pixels_match_the_official_vq_bit_for_bit():
    load_plugins()
    tok = tokenizers.get("vq-16")(device="cpu", checkpoint=folder("llamagen") / "vq_ds16_c2i.pt", architecture=VQ)
    ref = load("llamagen", "tokenizer")
    assert_equal(tok.encode(ref["images"]), ref["encoded_codes"], "encoded codes")
    assert_rel_close(tok.decode_float(ref["codes"]), ref["decoded_float"], what="decoded float")
    # uint8 exact: the decoder runs upstream's operations in upstream's order (x * sigmoid(x), bmm +
    # softmax attention, a contiguous codebook lookup), so not one rounding boundary is crossed differently
    assert_equal(tok.decode(ref["codes"]), ref["decoded_uint8"], "decoded uint8")


def test_gpt_logits_match_the_official_model_full_and_cached():
    assert_logits_match_full_and_cached(_generator().model, load("llamagen", "gpt_logits"), 256)


@pytest.mark.parametrize("which", sorted(SAMPLINGS))
def test_two_batches_of_tokens_match_the_official_generate(which):
    gen = _generator()
    params, seed = SAMPLINGS[which]
    ref = load("llamagen", f"sample_{which}")
    stream = torch.Generator().manual_seed(seed)  # sample_c2i.py: torch.manual_seed(args.seed)
    for i in range(2):
        assert_equal(gen.generate_codes(ref[f"labels_{i}"], stream, params), ref[f"tokens_{i}"], f"tokens of batch {i}")


def test_training_checkpoint_loads_as_upstream_loads_it():
    # train_c2i.py's format: {"model", "optimizer", "steps", "args": argparse.Namespace}, and a state dict key
    # the model does not have, which the sampling scripts' non-strict load ignores: same logits, key reported
    released, trained = _generator().model, _generator("c2i_gpt_train.pt")
    assert trained.info()["checkpoint_unexpected_keys"] == ["freqs_cis"]
    for k, v in released.state_dict().items():
        assert torch.equal(v, trained.model.state_dict()[k]), k


def test_a_missing_key_is_still_an_error_and_other_pickled_globals_are_refused(tmp_path):
    sd = torch.load(folder("llamagen") / "c2i_gpt.pt", weights_only=True)["model"]
    del sd["norm.weight"]
    torch.save({"model": sd}, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        _generator(tmp_path / "missing.pt")
    # any other global than argparse.Namespace is refused before anything runs
    torch.save({"model": sd, "args": pickle.PickleError("x")}, tmp_path / "global.pt")
    with pytest.raises(CheckpointError, match="refused by weights_only"):
        _generator(tmp_path / "global.pt")


def test_full_size_configs_have_the_released_keys():
    from baselines.llamagen import GPT_PRESETS, VQ_CONFIGS, build_gpt, build_vq

    for name, preset in GPT_PRESETS.items():
        ref = keys("llamagen", preset.checkpoint_name)
        sd = build_gpt(preset.config, "meta").state_dict()
        assert {k: list(v.shape) for k, v in sd.items()} == ref["keys"], name
    ref = keys("llamagen", "vq_ds16_c2i.pt")
    assert {k: list(v.shape) for k, v in build_vq(VQ_CONFIGS["VQ-16"], "meta").state_dict().items()} == ref["keys"]
