"""Trainer ``alitok-stage2``: freeze encoder, codebook and latent tokens; train the bidirectional
buffer-token decoder on MSE (+ optional hinge GAN; no VQ term).

Initialisation from the stage-1 checkpoint ``init_from``: every tensor whose name and shape match
is carried over (encoder, latent tokens, codebook, decoder blocks, heads); the buffer tokens and
decoder position embedding (new shapes) keep their fresh init; the aux head and ``embed_prob``
are dropped. The codes are therefore exactly the stage-1 codes, which the AR model trains on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import harness.runs.training as training
from alitok.train import tokenizer_common as common
from alitok.train.tokenizer_loop import TokenizerTraining

FROZEN_PREFIXES = ("encoder.", "quantize.", "latent_tokens")  # upstream: names containing these


@dataclasses.dataclass(frozen=True)
class Stage2Loss:
    mse_weight: float = 1.0
    perceptual: common.PerceptualConfig = common.PerceptualConfig()
    gan: common.GanConfig = common.GanConfig()


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stage2Config(training.RunConfig):
    """``harness.runs.training.RunConfig`` (steps, batch_size, seed, log/ckpt cadence, export) plus:"""

    init_from: str  # stage-1 checkpoint (last.safetensors of an alitok-stage1 run)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # stage-2-only keys, e.g. buffer_tokens
    data: common.DataConfig = common.DataConfig()
    optim: common.OptimConfig = common.OptimConfig()
    loss: Stage2Loss = Stage2Loss()


def is_frozen(name: str) -> bool:
    return name.startswith(FROZEN_PREFIXES)


def init_from_stage1(model: torch.nn.Module, stage1_sd: dict[str, torch.Tensor], path: str) -> dict[str, list[str]]:
    """Copy matching tensors; the frozen parts must all be present with equal shapes."""
    from harness.nn.checkpoints.checkpoint import CheckpointError

    own = model.state_dict()
    carried, reinit = [], []
    for k, v in own.items():
        if k in stage1_sd and tuple(stage1_sd[k].shape) == tuple(v.shape):
            carried.append(k)
        elif is_frozen(k):
            got = tuple(stage1_sd[k].shape) if k in stage1_sd else "missing"
            raise CheckpointError(
                f"{path}: stage-1 checkpoint does not fit this stage-2 model: {k} is {got}, need {tuple(v.shape)}"
            )
        else:
            reinit.append(k)
    with torch.no_grad():
        for k in carried:
            own[k].copy_(stage1_sd[k])
    dropped = [k for k in stage1_sd if k not in own]
    return {"carried": carried, "reinitialised": reinit, "dropped": dropped}


def stage2_loss(
    recon: torch.Tensor, x: torch.Tensor, loss: Stage2Loss, perceptual=None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The decoder's loss (no VQ or aux term: the encoder and codebook are frozen) and its parts."""
    mse = F.mse_loss(recon, x)
    total, logs = loss.mse_weight * mse, {"mse": mse.detach()}
    if perceptual is not None:
        perc = perceptual(recon, x)
        total = total + loss.perceptual.effnet_weight * perc
        logs["effnet"] = perc.detach()
    return total, logs


def train_stage2(cfg: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False) -> dict[str, Any]:
    from alitok.tokenizer import META_CONFIG, build, config_from_dict
    from harness.core.config import ConfigError
    from harness.nn.checkpoints.checkpoint import load_state_dict, read_metadata

    c = common.parse(Stage2Config, cfg)
    c.loss.perceptual.check()
    training.check_file("init_from", c.init_from, "stage-1 checkpoint (train the stage-1 config first)")
    training.check_publish(c.export, publish)
    meta = read_metadata(c.init_from)
    if META_CONFIG not in meta:
        raise ConfigError(
            f"init_from: {c.init_from}: no tokenizer config in its metadata (not an alitok-stage1 checkpoint)"
        )
    model_cfg = config_from_dict({**json.loads(meta[META_CONFIG]), **c.model})
    sd = load_state_dict(c.init_from)
    if any(k.startswith("tokenizer.") for k in sd):  # stage 1 ran with the GAN
        sd = {k[len("tokenizer.") :]: v for k, v in sd.items() if k.startswith("tokenizer.")}
    model = build(model_cfg, "stage2", generator=torch.Generator().manual_seed(c.seed))
    report = init_from_stage1(model, sd, c.init_from)
    model.to(device)
    for name, p in model.named_parameters():
        p.requires_grad_(not is_frozen(name))
    trainable = [p for n, p in model.named_parameters() if not is_frozen(n)]
    perceptual = c.loss.perceptual.build(device)

    def loss_fn(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            zq, codes, _ = model.encode(x)
        recon, _ = model.decoder(zq)
        total, logs = stage2_loss(recon, x, c.loss, perceptual)
        logs["codes_used"] = torch.tensor(float(codes.unique().numel()))
        return total, recon, logs

    resolved = {
        "model": model_cfg.to_dict(),
        "init": {k: len(v) for k, v in report.items()},
        "reinitialised": report["reinitialised"],
    }
    run = TokenizerTraining(c, model, trainable, out_dir, device, stage="stage2", resolved=resolved, publish=publish)
    summary = run.train(loss_fn)
    summary["reinitialised_from_scratch"] = ", ".join(report["reinitialised"])
    return summary


train_stage2.path_keys = (
    "init_from",
    "export",
    "data.root",
    "data.label_file",
)  # resolved against the config file's folder

train_stage2.check_config = common.config_checker(Stage2Config)
train_stage2.data_sources = ("embedded", "imagenet")  # the ablation driver's --plan reports other sources as missing
