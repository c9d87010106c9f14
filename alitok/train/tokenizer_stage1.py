"""Trainer ``alitok-stage1``: bidirectional encoder + VQ + causal decoder with the aux prefix head.

Loss = mse_weight * MSE(x, x_hat) + aux_weight * MSE(aux strip, [patch(0,0) | first row])
       + vq_weight * VQ loss (+ optional hinge GAN). ``aux_loss_weight: null`` = official 10*K/G^2.
Everything is trained; the codebook gets the online clustering update when ``clustering_vq``.
Writes ``last.safetensors`` (loadable as a stage-1 tokenizer: config and stage in its metadata),
``model.safetensors`` (the inference tokenizer) and ``train_record.json`` under ``--out``; with
``--publish`` the export is copied to ``export:``. Paths in the YAML resolve against its folder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import harness.runs.training as training
from alitok.train import tokenizer_common as common
from alitok.train.tokenizer_loop import TokenizerTraining


@dataclasses.dataclass(frozen=True)
class Stage1Loss:
    mse_weight: float = 1.0
    aux_loss_weight: float | None = None  # null = 10 * K / G^2 (official); 0 = ablation row (C)
    vq_weight: float = 1.0
    # Steps before quantisation starts (official 0). During them the decoder reads the continuous
    # encoder output; at the switch the codebook is seeded with random encoder features. A tiny model
    # trained for minutes otherwise collapses: its latent queries still attend near-uniformly, every
    # image gives nearly the same latents, and VQ locks that in.
    vq_warmup_steps: int = 0
    perceptual: common.PerceptualConfig = common.PerceptualConfig()
    gan: common.GanConfig = common.GanConfig()


@dataclasses.dataclass(frozen=True)
class CodebookTraining:
    """Remedies for codebook collapse at small scale (off by default, as upstream): ``reinit_every``
    K re-seeds codes unused for K steps at encoder outputs of the batch; ``lr_scale`` multiplies
    the learning rate of the codebook (a slower codebook, the encoder adapts to it)."""

    reinit_every: int = 0
    lr_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.reinit_every < 0 or self.lr_scale <= 0:
            raise ValueError(
                f"codebook.reinit_every must be >= 0 and codebook.lr_scale > 0, got {self.reinit_every}, {self.lr_scale}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Stage1Config(training.RunConfig):
    """``harness.runs.training.RunConfig`` (steps, batch_size, seed, log/ckpt cadence, export) plus:"""

    model_config: str | None = None  # YAML of alitok.tokenizer.TokenizerConfig keys
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # inline keys, override model_config
    data: common.DataConfig = common.DataConfig()
    optim: common.OptimConfig = common.OptimConfig()
    loss: Stage1Loss = Stage1Loss()
    codebook: CodebookTraining = CodebookTraining()


def aux_weight(loss: Stage1Loss, prefix_tokens: int, grid: int) -> float:
    if loss.aux_loss_weight is not None:
        return loss.aux_loss_weight
    return 10.0 * prefix_tokens / (grid * grid)


def stage1_loss(
    out: dict[str, Any], x: torch.Tensor, loss: Stage1Loss, w_aux: float, patch: int, perceptual=None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator loss of one batch (the GAN term is added by the loop) and its logged parts.
    ``out``: the model's ``recon``, ``aux`` and ``vq_loss``; ``x`` the images in [0, 1]."""
    from alitok.tokenizer import aux_target

    mse = F.mse_loss(out["recon"], x)
    total = loss.mse_weight * mse + loss.vq_weight * out["vq_loss"]
    logs = {"mse": mse.detach(), "vq_loss": out["vq_loss"].detach()}
    if perceptual is not None:
        perc = perceptual(out["recon"], x)
        total = total + loss.perceptual.effnet_weight * perc
        logs["effnet"] = perc.detach()
    if out["aux"] is not None and w_aux:
        aux = F.mse_loss(out["aux"], aux_target(x, patch))
        total = total + w_aux * aux
        logs["aux_mse"] = aux.detach()
    return total, logs


def train_stage1(cfg: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False) -> dict[str, Any]:
    from alitok.tokenizer import build, config_from_dict

    c = common.parse(Stage1Config, cfg)
    c.loss.perceptual.check()
    training.check_file("model_config", c.model_config, "tokenizer config YAML")
    training.check_publish(c.export, publish)
    model_cfg = config_from_dict(common.resolve_model_dict(c.model_config, c.model))
    w_aux = aux_weight(c.loss, model_cfg.prefix_tokens, model_cfg.grid)
    if model_cfg.prefix_tokens not in (0, model_cfg.grid + 1) and w_aux:
        from harness.core.config import ConfigError

        raise ConfigError(
            f"loss.aux_loss_weight: the aux target [patch(0,0) | first row] needs K = 1 + grid = "
            f"{model_cfg.grid + 1} prefix tokens, got {model_cfg.prefix_tokens}; set it to 0 for other K"
        )
    gen = torch.Generator().manual_seed(c.seed)
    model = build(model_cfg, "stage1", generator=gen).to(device)
    perceptual = c.loss.perceptual.build(device)
    model.quantize.reinit_every, model.quantize.reinit_seed = c.codebook.reinit_every, c.seed

    def loss_fn(x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        quantize = step >= c.loss.vq_warmup_steps
        if quantize and step == c.loss.vq_warmup_steps > 0:
            with torch.no_grad():
                model.quantize.init_from_features(
                    model.encoder(x, model.latent_tokens), torch.Generator().manual_seed(c.seed + step)
                )
        out = model(x, quantize=quantize)
        total, logs = stage1_loss(out, x, c.loss, w_aux, model_cfg.patch_size, perceptual)
        logs["codes_used"] = torch.tensor(float(out["codes"].unique().numel()))
        if c.codebook.reinit_every:
            # cumulative: the re-init steps (every reinit_every-th quantised step) need not be log steps
            logs["codes_revived_total"] = torch.tensor(float(model.quantize.revived_total))
        return total, out["recon"], logs

    # a slower codebook is its own param group (only then: a run without it resumes older checkpoints)
    codebook = [model.quantize.embedding.weight] if c.codebook.lr_scale != 1.0 else []
    rest = [p for p in model.parameters() if all(p is not q for q in codebook)]
    run = TokenizerTraining(
        c,
        model,
        rest,
        out_dir,
        device,
        stage="stage1",
        resolved={"model": model_cfg.to_dict(), "aux_loss_weight_resolved": w_aux},
        publish=publish,
        extra_groups=[(codebook, c.codebook.lr_scale)] if codebook else [],
    )
    return run.train(loss_fn)


train_stage1.path_keys = (
    "model_config",
    "export",
    "data.root",
    "data.label_file",
)  # resolved against the config file's folder

train_stage1.check_config = common.config_checker(Stage1Config)
train_stage1.data_sources = ("embedded", "imagenet")  # the ablation driver's --plan reports other sources as missing
