"""The ``alitok-ar`` trainer: a handful of steps on a random tiny tokenizer's codes (mechanics only)."""

import json
import math

import numpy as np
import pytest
import torch

from alitok.generator import ARConfig, build
from alitok.train import ar as ar_train
from alitok.train.ar_eval import evaluate, unigram_baselines
from harness.core.config import ConfigError
from harness.nn.checkpoints.checkpoint import load_state_dict, read_metadata

MODEL = {
    "depth": 1,
    "width": 32,
    "num_heads": 2,
    "codebook_size": 512,
    "num_classes": 11,
    "num_prefix_tokens": 9,
    "grid": 8,
    "resid_dropout": 0.1,
    "attn_dropout": 0.1,
    "token_dropout": 0.1,
}


def _cfg(**over):
    cfg = {
        "tokenizer": "random-tiny",
        "model": dict(MODEL),
        "data": {"per_class_train": 2, "per_class_val": 2, "ten_crop": True},
        "optim": {"lr": 3e-3, "warmup_steps": 1},
        "steps": 8,
        "batch_size": 16,
        "log_every": 1,
        "ckpt_every": 2,
        "label_dropout": 0.1,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("ALITOK_PROGRESS", "0")


def test_training_decreases_loss_and_exports(tmp_path):
    export = tmp_path / "tiny_ar.safetensors"
    cfg = _cfg(export=str(export), grid={"samples_per_class": 2, "real_per_class": 1}, decode_tokenizer="random-tiny")
    summary = ar_train.train_ar(cfg, tmp_path / "run", torch.device("cpu"), publish=True)
    grid = tmp_path / "run" / "samples_grid.png"
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(logs) == 8
    # zero-initialised head: the first loss is exactly the uniform cross-entropy ln(512)
    assert logs[0]["loss"] == pytest.approx(math.log(512), abs=1e-4)
    assert logs[-1]["loss"] < logs[0]["loss"] - 0.2
    rec = json.loads((tmp_path / "run" / "train_record.json").read_text())
    assert rec["kind"] == "train" and rec["spec"]["trainer"] == "alitok-ar"
    assert rec["spec"]["train_sequences"] == 2 * 11 * 10 and rec["spec"]["val_sequences"] == 2 * 11
    heldout = rec["metric_provenance"]["heldout"]
    assert set(heldout) == {"overall", "prefix", "first_row", "rest"}
    assert summary["val_acc"] == pytest.approx(heldout["overall"]["acc"], abs=1e-4)
    assert rec["metrics"]["val_acc"] == heldout["overall"]["acc"]
    assert rec["model"]["decode_tokenizer"]["heldout_codes_identical"] is True
    from PIL import Image

    assert Image.open(grid).size == (2 * (3 * 32 + 6), 2 * 11 * 32)  # 2 samples + gap + 1 real, x2 upscale
    assert 0.0 <= rec["samples"]["generated_1nn_acc"] <= 1.0 and rec["samples"]["num_generated"] == 22
    assert export.read_bytes() == (tmp_path / "run" / "model.safetensors").read_bytes()  # --publish
    meta = read_metadata(export)
    assert (
        json.loads(meta["ar_config"])["width"] == 32 and json.loads(meta["sampling"])["cfg_schedule"] == "power-cosine"
    )
    sd = load_state_dict(export)
    assert "embeddings.weight" in sd and sd["embeddings.weight"].shape == (512 + 1 + 11 + 1, 32)


def test_decode_tokenizer_must_share_the_codes_checked_before_training(tmp_path):
    cfg = _cfg(steps=1, tokenizer_seed=1, decode_tokenizer="random-tiny")
    with pytest.raises(ConfigError, match="other codes than the training tokenizer"):
        ar_train.train_ar(cfg, tmp_path, torch.device("cpu"))
    assert not (tmp_path / "last.safetensors").exists() and not (tmp_path / "log.jsonl").exists()


def test_killed_run_resumes_to_identical_weights(tmp_path, monkeypatch):
    cfg = _cfg()
    ar_train.train_ar(cfg, tmp_path / "straight", torch.device("cpu"))

    class Killed(Exception):
        pass

    real_run = ar_train.training.TrainLoop.run

    def run_then_die(self, step_fn, progress=True):
        def limited(step):
            if step == 5:  # dies after the step-4 checkpoint, mid-way to the next one
                raise Killed
            return step_fn(step)

        return real_run(self, limited, progress)

    monkeypatch.setattr(ar_train.training.TrainLoop, "run", run_then_die)
    with pytest.raises(Killed):
        ar_train.train_ar(cfg, tmp_path / "resumed", torch.device("cpu"))
    monkeypatch.setattr(ar_train.training.TrainLoop, "run", real_run)
    ar_train.train_ar(cfg, tmp_path / "resumed", torch.device("cpu"))
    # the restart continued from the step-4 checkpoint (step 5 ran twice), not from scratch
    steps = [json.loads(x)["step"] for x in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 5, 6, 7, 8]
    a = load_state_dict(tmp_path / "straight" / "last.safetensors")
    b = load_state_dict(tmp_path / "resumed" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="optim.betaz: unknown key"):
        ar_train.train_ar(_cfg(optim={"betaz": [0.9, 0.9]}), tmp_path, torch.device("cpu"))
    with pytest.raises(ConfigError, match="do not match the tokenizer"):
        ar_train.train_ar(_cfg(model={**MODEL, "grid": 4}), tmp_path, torch.device("cpu"))
    with pytest.raises(ConfigError, match="num_classes"):
        ar_train.train_ar(_cfg(model={**MODEL, "num_classes": 10}), tmp_path, torch.device("cpu"))
    with pytest.raises(ConfigError, match="no such checkpoint"):
        ar_train.train_ar(_cfg(tokenizer=str(tmp_path / "missing.safetensors")), tmp_path, torch.device("cpu"))


def test_cli_unknown_key_is_one_line_exit_2(tmp_path, capsys):
    from harness.cli import main

    cfg = tmp_path / "bad.yaml"
    cfg.write_text("trainer: alitok-ar\nmodel: {depth: 1}\nstepz: 3\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "stepz: unknown key" in err and "\n" not in err


def test_label_dropout_uses_the_null_class():
    model = build(ARConfig(**{**MODEL, "depth": 1}), device="meta")
    labels = torch.arange(20000) % 11
    ids = ar_train.conditioning(model, labels, 0.1, torch.Generator().manual_seed(0))
    dropped = ids == model.cfg.null_class_id
    assert torch.equal(ids[~dropped], model.cfg.class_ids(labels)[~dropped])
    assert abs(dropped.double().mean().item() - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20000)
    assert torch.all(ar_train.conditioning(model, labels[:5], 0.9999999, torch.Generator()) == model.cfg.null_class_id)


def test_weight_decay_split_and_lr_schedule():
    model = build(ARConfig(**MODEL), device="meta")
    decay, no_decay = ar_train.param_groups(model, 0.03)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in decay["params"]} == {
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.weight",
        "blocks.0.mlp.w1.weight",
        "blocks.0.mlp.w2.weight",
        "blocks.0.mlp.w3.weight",
        "output.weight",
    }
    assert "embeddings.weight" in {names[id(p)] for p in no_decay["params"]} and no_decay["weight_decay"] == 0.0
    from harness.runs.training import lr_at

    o = ar_train.OptimConfig(lr=1e-3, warmup_steps=10, end_lr=1e-5)  # the AR defaults: cosine after warm-up
    assert lr_at(0, 100, o) == pytest.approx(1e-4) and lr_at(9, 100, o) == pytest.approx(1e-3)
    assert lr_at(55, 100, o) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lr_at(100, 100, o) == pytest.approx(1e-5)


def test_ten_crop_layout():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    views = ar_train.ten_crop_32(imgs)
    assert views.shape == (3, 10, 32, 32, 3)
    # torchvision TenCrop order: tl, tr, bl, br, center, then the same of the flipped image;
    # the top-left crop of the flipped image is the mirrored top-right crop
    assert np.array_equal(views[:, 5], views[:, 1][:, :, ::-1])
    assert np.array_equal(views[:, 8], views[:, 2][:, :, ::-1])


def test_heldout_metrics_closed_forms():
    # a zero head predicts uniformly: CE = ln(V) everywhere and argmax = code 0
    cfg = ARConfig(**MODEL)
    model = build(cfg, generator=torch.Generator().manual_seed(0))
    codes = torch.randint(0, 4, (6, cfg.num_tokens), generator=torch.Generator().manual_seed(1))
    ev = evaluate(model, codes, torch.arange(6) % 11)
    assert ev["overall"]["ce"] == pytest.approx(math.log(512), abs=1e-5)
    assert ev["overall"]["acc"] == pytest.approx((codes == 0).double().mean().item())
    assert ev["prefix"]["acc"] == pytest.approx((codes[:, :9] == 0).double().mean().item())
    # unigram baselines, add-one smoothing, worked by hand
    b = unigram_baselines(torch.tensor([[0, 1], [0, 2]]), torch.tensor([[0, 1]]), 3)
    assert b["unigram"]["ce"] == pytest.approx(-(math.log(3 / 7) + math.log(2 / 7)) / 2)
    assert b["unigram"]["acc"] == 0.5
    assert b["positional_unigram"]["ce"] == pytest.approx(-(math.log(3 / 5) + math.log(2 / 5)) / 2)
    assert b["positional_unigram"]["acc"] == 1.0
