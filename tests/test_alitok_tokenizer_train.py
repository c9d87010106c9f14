"""Tokenizer training mechanics on a micro config: loss falls, resume is exact, stage 2 freezes
and initialises from stage 1, GAN option, config errors. A handful of steps each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_runs import HANG_GUARD_S
from micro_configs import MICRO_TOKENIZER
from tokenizer_kill_resume import kill_then_resume, same_weights

from alitok.tokenizer import build, load_model
from alitok.train.tokenizer_stage1 import Stage1Loss, aux_weight, train_stage1
from alitok.train.tokenizer_stage2 import init_from_stage1, train_stage2
from harness.core.config import ConfigError
from harness.nn.checkpoints.checkpoint import load_state_dict

MICRO_MODEL = {**MICRO_TOKENIZER, "init_std": 0.08}


def stage1_cfg(**over):
    cfg = {
        "steps": 6,
        "batch_size": 8,
        "model": dict(MICRO_MODEL),
        "data": {"per_class": 2},
        "optim": {"lr": 3e-3},
        "log_every": 1,
        "ckpt_every": 3,
    }
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("s1")
    summary = train_stage1(stage1_cfg(steps=40), out / "run", torch.device("cpu"))
    return out, summary


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_stage1_trains_and_exports_a_loadable_stage1_tokenizer(stage1_run):
    out, summary = stage1_run
    rows = _log(out / "run")
    assert len(rows) == 40 and {"mse", "aux_mse", "vq_loss", "loss"} <= set(rows[0])
    model, meta = load_model(out / "run/model.safetensors")
    # reconstruction error on fixed training crops: trained model vs the same seeded init
    from alitok.tokenizer import config_from_dict
    from alitok.train.tokenizer_common import DataConfig, load_train_images

    x = load_train_images(DataConfig(per_class=2), 32).permute(0, 3, 1, 2).float() / 255
    init = build(config_from_dict(MICRO_MODEL), "stage1", generator=torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(init(x)["recon"], x)
        after = torch.nn.functional.mse_loss(model(x)["recon"], x)
    assert after < 0.9 * before  # 40 steps: about 0.82 here
    assert model.stage == "stage1" and meta["tokenizer_stage"] == "stage1" and meta["step"] == "40"
    assert "embed_prob" in dict(model.quantize.named_buffers())
    assert summary["steps"] == 40


def test_aux_weight_default_is_the_official_formula():
    assert aux_weight(Stage1Loss(), 17, 16) == pytest.approx(10 * 17 / 256)
    assert aux_weight(Stage1Loss(), 9, 8) == pytest.approx(10 * 9 / 64)
    assert aux_weight(Stage1Loss(aux_loss_weight=0.0), 9, 8) == 0.0


def test_resume_after_a_kill_gives_the_uninterrupted_weights(tmp_path, monkeypatch):
    cfg = stage1_cfg(steps=6, loss={"vq_warmup_steps": 2})
    train_stage1(cfg, tmp_path / "full", torch.device("cpu"))
    # killed at step 4, resumed from the step-3 checkpoint
    kill_then_resume(monkeypatch, lambda: train_stage1(cfg, tmp_path / "killed", torch.device("cpu")), kill_at=4)
    same_weights(tmp_path / "full/last.safetensors", tmp_path / "killed/last.safetensors")


def test_stage2_freezes_encoder_codebook_latents_and_starts_from_stage1(stage1_run, tmp_path):
    out, _ = stage1_run
    s1 = load_state_dict(out / "run/last.safetensors")
    summary = train_stage2(
        {
            "steps": 2,
            "batch_size": 8,
            "init_from": str(out / "run/last.safetensors"),
            "data": {"per_class": 2},
            "optim": {"lr": 3e-3},
            "log_every": 1,
        },
        tmp_path / "s2",
        torch.device("cpu"),
    )
    s2 = load_state_dict(tmp_path / "s2/last.safetensors")
    frozen = [k for k in s2 if k.startswith(("encoder.", "quantize.", "latent_tokens"))]
    assert len(frozen) > 10
    for k in frozen:
        assert torch.equal(s1[k], s2[k]), k  # bit-identical after training steps
    assert not torch.equal(
        s1["decoder.transformer.0.attn.in_proj.weight"], s2["decoder.transformer.0.attn.in_proj.weight"]
    )
    assert s2["decoder.class_embedding"].shape == (3, 32) and "decoder.ffn_aux.0.weight" not in s2
    assert "quantize.embed_prob" not in s2
    assert summary["reinitialised_from_scratch"] == "decoder.class_embedding, decoder.latent_token_positional_embedding"
    tok, meta = load_model(tmp_path / "s2/model.safetensors")
    assert tok.stage == "stage2"
    # the codes, which the AR model is trained on, are exactly the stage-1 codes
    s1_model, _ = load_model(out / "run/last.safetensors")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(s1_model.eval().encode(x)[1], tok.encode(x)[1])


def test_init_from_stage1_carries_matching_tensors_only():
    from alitok.tokenizer import config_from_dict

    cfg = config_from_dict(MICRO_MODEL)
    s1 = build(cfg, "stage1", generator=torch.Generator().manual_seed(0))
    s2 = build(cfg, "stage2", generator=torch.Generator().manual_seed(1))
    fresh = s2.decoder.class_embedding.detach().clone()
    report = init_from_stage1(s2, s1.state_dict(), "s1")
    assert torch.equal(s2.decoder.transformer[1].mlp.c_fc.weight, s1.decoder.transformer[1].mlp.c_fc.weight)
    assert torch.equal(s2.decoder.ffn[0].weight, s1.decoder.ffn[0].weight)
    assert torch.equal(s2.decoder.class_embedding, fresh)
    assert set(report["dropped"]) == {
        "quantize.embed_prob",
        "decoder.ffn_aux.0.weight",
        "decoder.ffn_aux.0.bias",
        "decoder.conv_out_aux.weight",
        "decoder.conv_out_aux.bias",
        "decoder.class_embedding",
        "decoder.latent_token_positional_embedding",
    } - set(s2.state_dict())
    other = build(config_from_dict({**MICRO_MODEL, "codebook_size": 32}), "stage1", device="meta").state_dict()
    with pytest.raises(Exception, match="quantize.embedding.weight"):
        init_from_stage1(s2, other, "other.safetensors")


@pytest.mark.parametrize(
    "over",
    [
        {"decoder_attention": "bidirectional"},
        {"num_prefix_tokens": 0},
        {"encoder_attention": "causal", "clustering_vq": False},
    ],
)
def test_ablation_switches_train(tmp_path, over):
    cfg = stage1_cfg(steps=2, model={**MICRO_MODEL, **over})
    summary = train_stage1(cfg, tmp_path / "run", torch.device("cpu"))
    assert summary["steps"] == 2
    model, _ = load_model(tmp_path / "run/last.safetensors")
    assert model.cfg.decoder_attention == over.get("decoder_attention", "causal")
    if over.get("num_prefix_tokens") == 0:
        assert "aux_mse" not in summary and model.cfg.num_tokens == 16


def test_gan_option_trains_the_discriminator(tmp_path):
    cfg = stage1_cfg(steps=2, loss={"gan": {"enabled": True, "channels": 8}})
    summary = train_stage1(cfg, tmp_path / "run", torch.device("cpu"))
    assert "d_loss" in summary and "g_adv" in summary
    sd = load_state_dict(tmp_path / "run/last.safetensors")
    assert any(k.startswith("discriminator.") for k in sd)
    model, _ = load_model(tmp_path / "run/last.safetensors")  # the tokenizer part loads on its own
    assert model.stage == "stage1"


@pytest.mark.parametrize(
    "over, match",
    [
        ({"loss": {"auxx_loss_weight": 1.0}}, r"loss.auxx_loss_weight: unknown key; did you mean 'aux_loss_weight'"),
        ({"loss": {"perceptual": {"lpips_weight": 1.0}}}, "not implemented here"),
        ({"model": {**MICRO_MODEL, "decoder_attention": "sideways"}}, "model.decoder_attention"),
        ({"model": {**MICRO_MODEL, "num_prefix_tokens": 3}}, "needs K = 1 \\+ grid = 5"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, over, match):
    with pytest.raises(ConfigError, match=match):
        train_stage1(stage1_cfg(**over), tmp_path / "run", torch.device("cpu"))
    assert not (tmp_path / "run/last.safetensors").exists()


def test_cli_train_reports_a_bad_stage2_source_in_one_line(tmp_path):
    cfg = tmp_path / "s2.yaml"
    cfg.write_text(f"trainer: alitok-stage2\nsteps: 1\nbatch_size: 2\ninit_from: {tmp_path}/missing.safetensors\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "train", str(cfg), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.safetensors: no such stage-1 checkpoint" in lines[0]


def test_a_run_writes_only_under_out_unless_published(stage1_run, tmp_path):
    out, _ = stage1_run
    export = tmp_path / "pkg" / "tok.safetensors"
    cfg = stage1_cfg(steps=40, export=str(export))
    summary = train_stage1(cfg, out / "run", torch.device("cpu"))  # finished: nothing left to train
    assert summary["steps"] == 40 and "published" not in summary and not export.exists()
    summary = train_stage1(cfg, out / "run", torch.device("cpu"), publish=True)
    assert summary["published"] == str(export)
    assert export.read_bytes() == (out / "run/model.safetensors").read_bytes()


def test_train_record_is_a_run_record(stage1_run):
    from harness.runs.records import load_records

    out, summary = stage1_run
    df = load_records(out / "run")
    assert len(df) == 1 and df.loc[0, "kind"] == "train" and df.loc[0, "spec.trainer"] == "alitok-stage1"
    assert df.loc[0, "timings.steps"] == 40
    assert df.loc[0, "metrics.mse"] == pytest.approx(_log(out / "run")[-1]["mse"], rel=1e-5)
