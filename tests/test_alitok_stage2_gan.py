"""The hinge GAN in stage 2, switched on by config only (the ablation's F_gan rows): nothing changes
before ``loss.gan.start_step``, then D trains and its term reaches the decoder; the frozen parts stay
bit-identical; the export is a plain stage-2 tokenizer; a killed GAN run resumes to the same weights.
Micro sizes, a few steps each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from micro_configs import MICRO_TOKENIZER
from tokenizer_kill_resume import kill_then_resume, same_weights

from alitok.tokenizer import load_model
from alitok.train.tokenizer_gan import PatchDiscriminator
from alitok.train.tokenizer_stage1 import train_stage1
from alitok.train.tokenizer_stage2 import train_stage2
from harness.nn.checkpoints.checkpoint import load_state_dict
from harness.nn.layers.vit import init_vit_weights

MICRO_MODEL = {**MICRO_TOKENIZER, "init_std": 0.08}
GAN = {"enabled": True, "start_step": 2, "channels": 8, "lr": 1e-3}


@pytest.fixture(scope="module")
def stage1_ckpt(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s1") / "run"
    train_stage1(
        {
            "steps": 3,
            "batch_size": 8,
            "model": dict(MICRO_MODEL),
            "data": {"per_class": 2},
            "optim": {"lr": 3e-3},
            "log_every": 1,
            "ckpt_every": 3,
        },
        out,
        torch.device("cpu"),
    )
    return out / "last.safetensors"


def stage2_cfg(init_from: Path, gan: dict | None, **over) -> dict:
    cfg = {
        "steps": 4,
        "batch_size": 8,
        "init_from": str(init_from),
        "data": {"per_class": 2},
        "optim": {"lr": 3e-3, "warmup_steps": 0},
        "log_every": 1,
        "ckpt_every": 2,
    }
    if gan is not None:
        cfg["loss"] = {"gan": gan}
    cfg.update(over)
    return cfg


def _log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_stage2_gan_starts_at_its_step_trains_d_and_reaches_the_decoder(stage1_ckpt, tmp_path):
    cpu = torch.device("cpu")
    train_stage2(stage2_cfg(stage1_ckpt, None), tmp_path / "plain", cpu)
    summary = train_stage2(stage2_cfg(stage1_ckpt, GAN), tmp_path / "gan", cpu)
    plain, gan = _log(tmp_path / "plain"), _log(tmp_path / "gan")
    drop = ("time_s",)
    # before start_step the run is the GAN-off run exactly (same data stream, same updates)
    for a, b in zip(plain[:2], gan[:2]):
        assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    assert all("g_adv" in r and "d_loss" in r for r in gan[2:]) and "d_loss" in summary
    # the hinge D loss is 0.5 * (relu(1 - D(x)) + relu(1 + D(x_hat))): 1.0 at zero logits, never negative
    assert all(r["d_loss"] >= 0.0 for r in gan[2:])

    s1 = load_state_dict(stage1_ckpt)
    sd = load_state_dict(tmp_path / "gan/last.safetensors")
    tok = {k[len("tokenizer.") :]: v for k, v in sd.items() if k.startswith("tokenizer.")}
    disc = {k[len("discriminator.") :]: v for k, v in sd.items() if k.startswith("discriminator.")}
    assert tok and disc and len(tok) + len(disc) == len(sd)
    frozen = [k for k in tok if k.startswith(("encoder.", "quantize.", "latent_tokens"))]
    assert len(frozen) > 10 and all(torch.equal(s1[k], tok[k]) for k in frozen)
    # D moved away from its seeded init (seed + 1, as the training loop draws it)
    d0 = PatchDiscriminator(GAN["channels"])
    init_vit_weights(d0, torch.Generator().manual_seed(0 + 1))
    assert any(not torch.equal(v, disc[k]) for k, v in d0.state_dict().items())
    # the generator term changed the decoder relative to the GAN-off run
    other = load_state_dict(tmp_path / "plain/last.safetensors")
    name = "decoder.transformer.0.attn.in_proj.weight"
    assert not torch.equal(other[name], tok[name])
    # the export is the tokenizer alone, loadable as a stage-2 tokenizer
    model, _ = load_model(tmp_path / "gan/model.safetensors")
    assert model.stage == "stage2"
    assert not any(k.startswith("discriminator.") for k in load_state_dict(tmp_path / "gan/model.safetensors"))


def test_a_killed_stage2_gan_run_resumes_to_the_same_weights(stage1_ckpt, tmp_path, monkeypatch):
    cfg = stage2_cfg(stage1_ckpt, {**GAN, "start_step": 1})
    train_stage2(cfg, tmp_path / "full", torch.device("cpu"))
    # killed at step 3, resumed from the step-2 checkpoint (D + its Adam state)
    kill_then_resume(monkeypatch, lambda: train_stage2(cfg, tmp_path / "killed", torch.device("cpu")), kill_at=3)
    a = same_weights(tmp_path / "full/last.safetensors", tmp_path / "killed/last.safetensors")
    assert any(k.startswith("discriminator.") for k in a)
