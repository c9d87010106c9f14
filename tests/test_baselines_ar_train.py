"""Tiny AR-baseline trainers (baselines/train_tiny.py): micro runs export files the plugins load,
mismatched geometry and unknown keys are config errors, and the committed tiny weights load."""
from pathlib import Path

import pytest
import torch

from baselines import plugin_ar
from baselines.train_tiny import load_tiny_gpt, load_tiny_tokenizer, train_ar, train_tokenizer
from harness.config import ConfigError
from harness.nn.checkpoint import CheckpointError

REPO = Path(__file__).resolve().parent.parent
DATA = {"image_size": 32, "per_class_train": 4, "per_class_val": 2, "seed": 0, "hflip": True}
MODELS = {
    "vq": {"ch": 32, "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 32, "codebook_size": 16, "codebook_dim": 4,
           "image_size": 32},
    "titok": {"image_size": 32, "patch_size": 8, "enc_width": 32, "enc_depth": 1, "enc_heads": 2, "dec_width": 32,
              "dec_depth": 1, "dec_heads": 2, "num_latent_tokens": 4, "token_size": 4, "codebook_size": 16,
              "is_legacy": False},
}


def _tokenizer_cfg(family, tmp_path):
    return {"family": family, "model": MODELS[family], "steps": 4, "batch_size": 4, "vq_warmup_steps": 2, "data": DATA,
            "log_every": 2, "ckpt_every": 2,
            "export": {"weights": str(tmp_path / f"{family}.safetensors"), "record": str(tmp_path / f"{family}.json")}}


@pytest.mark.parametrize("family,tokens", [("vq", 16), ("titok", 4)])
def test_micro_tokenizer_then_ar_runs_export_loadable_systems(tmp_path, family, tokens):
    summary = train_tokenizer(_tokenizer_cfg(family, tmp_path), tmp_path / "tok", torch.device("cpu"))
    assert summary["steps"] == 4 and (tmp_path / f"{family}.json").is_file()
    tok = load_tiny_tokenizer(tmp_path / f"{family}.safetensors", "t")
    assert tok.num_tokens == tokens and tok.codebook_size == 16
    ar_cfg = {"tokenizer": str(tmp_path / f"{family}.safetensors"), "steps": 3, "batch_size": 4, "data": DATA,
              "model": {"depth": 1, "width": 32, "num_heads": 2, "vocab_size": 16, "num_classes": 11,
                        "num_tokens": tokens, "rope": "2d" if family == "vq" else "1d"},
              "sampling": {"cfg_scale": 2.0}, "log_every": 1, "ckpt_every": 3,
              "export": {"weights": str(tmp_path / "gpt.safetensors"), "record": str(tmp_path / "gpt.json")}}
    out = train_ar(ar_cfg, tmp_path / "ar", torch.device("cpu"))
    assert out["steps"] == 3 and 0.0 <= out["val_acc"] <= 1.0
    model, sampling, tok_path = load_tiny_gpt(tmp_path / "gpt.safetensors")
    assert sampling.cfg_scale == 2.0 and tok_path == ar_cfg["tokenizer"]
    gen = plugin_ar.llamagen_tiny(device="cpu", checkpoint=str(tmp_path / "gpt.safetensors"),
                                  tokenizer_checkpoint=str(tmp_path / f"{family}.safetensors"))
    images = gen.generate(torch.tensor([0, 10]), torch.Generator().manual_seed(0))
    assert images.shape == (2, 32, 32, 3) and images.dtype == torch.uint8


def test_geometry_mismatch_and_unknown_keys_are_config_errors(tmp_path):
    train_tokenizer(_tokenizer_cfg("titok", tmp_path), tmp_path / "tok", torch.device("cpu"))
    bad = {"tokenizer": str(tmp_path / "titok.safetensors"), "steps": 1, "batch_size": 2, "data": DATA,
           "model": {"depth": 1, "width": 32, "num_heads": 2, "vocab_size": 16, "num_classes": 11, "num_tokens": 9,
                     "rope": "1d"}}
    with pytest.raises(ConfigError, match="do not match"):
        train_ar(bad, tmp_path / "ar", torch.device("cpu"))
    with pytest.raises(ConfigError, match="stepz"):
        train_tokenizer({**_tokenizer_cfg("vq", tmp_path), "stepz": 3}, tmp_path / "x", torch.device("cpu"))


def test_tiny_loaders_refuse_files_without_their_metadata(tmp_path):
    from harness.nn.checkpoint import save_safetensors

    path = save_safetensors(tmp_path / "x.safetensors", {"w": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="not a tiny baseline tokenizer"):
        load_tiny_tokenizer(path, "t")
    with pytest.raises(CheckpointError, match="not a tiny baseline AR model"):
        load_tiny_gpt(path)


@pytest.mark.parametrize("factory", ["llamagen_tiny", "titok_ar_tiny"])
def test_committed_tiny_generators_load_and_sample(factory):
    if not (REPO / "baselines" / "weights" / "tiny_titok_gpt.safetensors").is_file():
        pytest.skip("tiny baseline weights not committed in this checkout")
    gen = getattr(plugin_ar, factory)(device="cpu")
    a = gen.generate(torch.tensor([1, 5]), torch.Generator().manual_seed(3))
    assert torch.equal(a, gen.generate(torch.tensor([1, 5]), torch.Generator().manual_seed(3)))
    assert gen.info()["tokenizer"]["checkpoint"].endswith(".safetensors")
