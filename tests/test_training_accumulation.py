"""Gradient accumulation and bf16 autocast options of the trainers (harness.runs.training RunConfig keys
``grad_accum`` / ``precision``), at micro size: 2 micro-batches of half the batch give the weights
of one full batch within float tolerance; bf16 trains and stays close to fp32 on the first step."""

from __future__ import annotations

import pytest
import torch
from micro_configs import MICRO_TOKENIZER

from alitok.train import ar as ar_train
from alitok.train.tokenizer_stage1 import train_stage1
from harness.nn.checkpoints.checkpoint import load_state_dict
from harness.runs.training import micro_batches

AR_MODEL = {
    "depth": 1,
    "width": 32,
    "num_heads": 2,
    "codebook_size": 512,
    "num_classes": 11,
    "num_prefix_tokens": 9,
    "grid": 8,
    "resid_dropout": 0.0,
    "attn_dropout": 0.0,
    "token_dropout": 0.0,
}
TOK_MODEL = {
    **MICRO_TOKENIZER,
    "init_std": 0.08,
    "clustering_vq": False,
}  # the online-clustering update is per forward, so not batch-split invariant


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ALITOK_PROGRESS", "0")


def _ar_cfg(**over):
    cfg = {
        "tokenizer": "random-tiny",
        "model": dict(AR_MODEL),
        "data": {"per_class_train": 2, "per_class_val": 1, "ten_crop": False},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "steps": 3,
        "batch_size": 16,
        "log_every": 1,
        "ckpt_every": 3,
        "label_dropout": 0.1,
    }
    cfg.update(over)
    return cfg


def _same(a_dir, b_dir, atol):
    a, b = load_state_dict(a_dir / "last.safetensors"), load_state_dict(b_dir / "last.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < atol, worst
    return worst


def test_micro_batches_split_evenly_or_refuse():
    assert micro_batches(8, 2) == [slice(0, 4), slice(4, 8)]
    with pytest.raises(ValueError, match="grad_accum"):
        micro_batches(6, 4)


def test_ar_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    ar_train.train_ar(_ar_cfg(), tmp_path / "full", torch.device("cpu"))
    ar_train.train_ar(_ar_cfg(grad_accum=2), tmp_path / "accum", torch.device("cpu"))
    _same(tmp_path / "full", tmp_path / "accum", atol=1e-5)
    # and the check can fail: a different batch size moves the weights by far more than that
    ar_train.train_ar(_ar_cfg(batch_size=8), tmp_path / "half", torch.device("cpu"))
    with pytest.raises(AssertionError):
        _same(tmp_path / "full", tmp_path / "half", atol=1e-5)


def test_tokenizer_accumulating_two_half_batches_equals_one_full_batch(tmp_path):
    def cfg(**over):
        return {
            "steps": 3,
            "batch_size": 8,
            "model": dict(TOK_MODEL),
            "data": {"per_class": 2},
            "optim": {"lr": 3e-3},
            "log_every": 1,
            "ckpt_every": 3,
            **over,
        }

    train_stage1(cfg(), tmp_path / "full", torch.device("cpu"))
    train_stage1(cfg(grad_accum=2), tmp_path / "accum", torch.device("cpu"))
    _same(tmp_path / "full", tmp_path / "accum", atol=1e-5)


def test_bf16_autocast_trains_close_to_fp32(tmp_path):
    import json

    ar_train.train_ar(_ar_cfg(steps=1), tmp_path / "fp32", torch.device("cpu"))
    ar_train.train_ar(_ar_cfg(steps=1, precision="bf16"), tmp_path / "bf16", torch.device("cpu"))
    l32 = json.loads((tmp_path / "fp32" / "log.jsonl").read_text().splitlines()[0])["loss"]
    l16 = json.loads((tmp_path / "bf16" / "log.jsonl").read_text().splitlines()[0])["loss"]
    assert l16 == pytest.approx(l32, rel=2e-2)
    # bf16 really ran: the step differs from fp32 by more than float rounding, but stays close
    worst = _same(tmp_path / "fp32", tmp_path / "bf16", atol=5e-2)
    assert worst > 1e-7


def test_bad_accumulation_is_a_config_error(tmp_path):
    from harness.core.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="grad_accum"):
        ar_train.train_ar(_ar_cfg(grad_accum=3), tmp_path, torch.device("cpu"))
