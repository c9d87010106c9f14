"""Trainer ``diffusion-tiny``: a pixel-space DiT on the embedded natural patches, as a DDPM (DiT:
eps + learned variance, loss MSE + VLB) or a flow model (SiT: linear interpolant, velocity MSE,
t ~ U(0, 1)).

Label dropout to the null class, AdamW, warmup + cosine LR, grad clip and an EMA copy (sampled
from, as DiT does) inside one saved module, so ``harness.runs.training.TrainLoop`` checkpoints and
resumes both. Every random draw (batch, labels, t, noise) comes from ``loop.generator``. At the end:
held-out loss at fixed (t, noise) for the raw and EMA nets, the EMA weights exported with config
and sampling preset in the safetensors metadata (``model.safetensors``), ``train_record.json`` and
``samples_grid.png``, all under ``--out``; ``--publish`` copies the export to the config's
``export:`` path (committed ``baselines/weights/``). Paths in the YAML resolve against its folder.
One process only: the noise is drawn per batch from one stream (a torchrun launch is refused).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import harness.runs.training as training
from harness.core.config import ConfigError, from_dict
from harness.core.interfaces import DiffusionSampling
from harness.core.io import atomic_path
from harness.nn.layers.dit_blocks import DiT, DiTConfig
from harness.nn.samplers import flow
from harness.nn.samplers.diffusion import NUM_TRAIN_TIMESTEPS, GaussianDiffusion

META_CONFIG, META_KIND, META_SAMPLING = "dit_config", "kind", "sampling"
MODEL_NAMES = {"ddpm": "dit-tiny", "flow": "flow-tiny"}  # registry names (harness/core/plugins.py)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    image_size: int = 32
    per_class_train: int = 512
    per_class_val: int = 64
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class OptimConfig(training.OptimConfig):
    """The engine's optimizer section (AdamW, warm-up then cosine) plus the EMA decay."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "cosine"
    end_lr: float = 1e-5
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """``out/samples_grid.png``: EMA samples per class beside held-out reals (0: no grid)."""

    samples_per_class: int = 8
    seed: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionTrainConfig(training.RunConfig):
    """``harness.runs.training.RunConfig`` (steps, batch_size, seed, log/ckpt cadence, export) plus:"""

    kind: str  # "ddpm" or "flow"
    model: DiTConfig
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    sampling: DiffusionSampling = DiffusionSampling()
    steps: int = 1000
    batch_size: int = 32
    label_dropout: float = 0.1
    log_every: int = 25
    ckpt_every: int = 250
    eval_every: int = 250
    grid: GridConfig = GridConfig()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in ("ddpm", "flow"):
            raise ConfigError(f"kind: must be ddpm or flow, got {self.kind!r}")
        if self.kind == "flow" and self.model.learn_sigma:
            raise ConfigError("model.learn_sigma: a flow model predicts velocity only; set it to false")


class EMAPair(torch.nn.Module):
    """The trained net and its EMA, saved together so a resumed run keeps the average."""

    def __init__(self, net: DiT):
        super().__init__()
        self.net, self.ema = net, copy.deepcopy(net).requires_grad_(False)

    @torch.no_grad()
    def update(self, decay: float) -> None:
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p, 1.0 - decay)


def to_float(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def diffusion_loss(
    kind: str, net: DiT, x1: torch.Tensor, y: torch.Tensor, g: torch.Generator, ddpm: GaussianDiffusion
) -> dict[str, torch.Tensor]:
    """The loss at a random (t, noise) from ``g``: noise first, then t (the committed runs' order)."""
    b = x1.shape[0]
    noise = torch.randn(x1.shape, generator=g)
    if kind == "ddpm":
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (b,), generator=g)
    else:
        t = torch.rand((b,), generator=g)
    return loss_at(kind, net, x1, y, t, noise, ddpm)


def loss_at(
    kind: str, net, x1: torch.Tensor, y: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, ddpm: GaussianDiffusion
) -> dict[str, torch.Tensor]:
    """The loss at given (t, noise): DDPM ``training_losses`` (DiT) or the velocity MSE of the
    linear interpolant (SiT ``transport.training_losses``, Linear / velocity), batch-averaged."""
    if kind == "ddpm":
        xt = ddpm.q_sample(x1, t, noise)
        return ddpm.training_losses(net(xt, t, y), x1, xt, t, noise)
    xt, v = flow.interpolate(noise, x1, t)
    return {"loss": ((net(xt, t, y) - v) ** 2).mean()}


@torch.no_grad()
def heldout_loss(
    kind: str, net: DiT, x: torch.Tensor, y: torch.Tensor, ddpm: GaussianDiffusion, seed: int = 1234
) -> float:
    net.eval()
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for i in range(0, len(x), 256):
        total += float(diffusion_loss(kind, net, x[i : i + 256], y[i : i + 256], g, ddpm)["loss"]) * len(x[i : i + 256])
    net.train()
    return total / len(x)


def write_grid(
    images: np.ndarray,
    per_class: int,
    real: np.ndarray,
    real_labels: np.ndarray,
    path: Path,
    num_classes: int,
    real_per_class: int = 4,
    scale: int = 2,
    gap: int = 6,
) -> None:
    """One row per class: generated samples, a gap, then held-out real images of that class."""
    from PIL import Image

    s = images.shape[1]
    canvas = np.full((num_classes * s, (per_class + real_per_class) * s + gap, 3), 255, dtype=np.uint8)
    for c in range(num_classes):
        for j in range(per_class):
            canvas[c * s : (c + 1) * s, j * s : (j + 1) * s] = images[c * per_class + j]
        for j, img in enumerate(real[real_labels == c][:real_per_class]):
            x0 = per_class * s + gap + j * s
            canvas[c * s : (c + 1) * s, x0 : x0 + s] = img
    canvas = canvas.repeat(scale, 0).repeat(scale, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def train_diffusion(
    cfg_dict: dict[str, Any], out_dir: Path, device: torch.device, publish: bool = False
) -> dict[str, Any]:
    """The ``diffusion-tiny`` trainer (see module doc); returns the summary the CLI prints."""
    from harness.data.embedded import NUM_CLASSES, natural_patches

    cfg = from_dict(DiffusionTrainConfig, cfg_dict)
    if cfg.model.num_classes != NUM_CLASSES:
        raise ConfigError(
            f"model.num_classes: {cfg.model.num_classes}, but the embedded dataset has {NUM_CLASSES} classes"
        )
    if device.type != "cpu":
        raise ConfigError("the tiny diffusion trainer runs on CPU (its generator stream is CPU-only)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "the tiny diffusion trainer runs in one process (its noise stream is drawn per batch); "
            "launch it without torchrun"
        )
    training.check_publish(cfg.export, publish)
    out = Path(out_dir)
    tr_x, tr_y = natural_patches("train", cfg.data.image_size, cfg.data.per_class_train, cfg.data.seed)
    va_x, va_y = natural_patches("val", cfg.data.image_size, cfg.data.per_class_val, cfg.data.seed)
    train_x, train_y = to_float(tr_x), torch.from_numpy(tr_y)
    val_x, val_y = to_float(va_x), torch.from_numpy(va_y)

    net = DiT(cfg.model).initialize_weights(torch.Generator().manual_seed(cfg.seed))
    pair = EMAPair(net)
    optimizer = training.make_optimizer(net.parameters(), cfg.optim)
    config_json = json.loads(json.dumps(dataclasses.asdict(cfg)))
    # the publish destination does not change training: a finished run can be published later
    run_config = {k: v for k, v in config_json.items() if k != "export"}
    metadata = {
        META_CONFIG: json.dumps(cfg.model.to_dict(), sort_keys=True),
        META_KIND: cfg.kind,
        META_SAMPLING: json.dumps(cfg.sampling.to_dict(), sort_keys=True),
        "seed": str(cfg.seed),
        "git_sha": training.git_sha(),
    }
    loop = training.TrainLoop(
        out,
        pair,
        optimizer,
        cfg.steps,
        cfg.seed,
        run_config,
        ckpt_every=cfg.ckpt_every,
        log_every=cfg.log_every,
        metadata=metadata,
    )
    ddpm = GaussianDiffusion.respaced(NUM_TRAIN_TIMESTEPS, learn_sigma=cfg.model.learn_sigma)
    null = cfg.model.num_classes

    def step_fn(step: int) -> dict[str, float]:
        net.train()
        # the scheduled LR itself (not set_lr's base_lr * factor): bit-identical to the committed runs
        for group in optimizer.param_groups:
            group["lr"] = training.lr_at(step, cfg.steps, cfg.optim)
        idx = torch.randint(0, len(train_x), (cfg.batch_size,), generator=loop.generator)
        drop = torch.rand((cfg.batch_size,), generator=loop.generator) < cfg.label_dropout
        y = torch.where(drop, torch.full_like(train_y[idx], null), train_y[idx])
        losses = diffusion_loss(cfg.kind, net, train_x[idx], y, loop.generator, ddpm)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.optim.grad_clip or float("inf"))
        optimizer.step()
        pair.update(cfg.optim.ema_decay)
        values = {k: float(v.detach()) for k, v in losses.items()}
        values.update(grad_norm=float(grad_norm), lr=optimizer.param_groups[0]["lr"])
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0:
            values["val_loss_ema"] = heldout_loss(cfg.kind, pair.ema, val_x, val_y, ddpm)
        return values

    loop.run(step_fn, progress=os.environ.get("ALITOK_PROGRESS", "1") != "0")
    first, final = loop.first_and_last("loss")
    init = DiT(cfg.model).initialize_weights(torch.Generator().manual_seed(cfg.seed))
    metrics = {
        "first_logged_loss": first,
        "final_logged_loss": final,
        "val_loss": heldout_loss(cfg.kind, net, val_x, val_y, ddpm),
        "val_loss_ema": heldout_loss(cfg.kind, pair.ema, val_x, val_y, ddpm),
        "val_loss_init": heldout_loss(cfg.kind, init, val_x, val_y, ddpm),
    }
    summary: dict[str, Any] = {
        "steps": loop.step,
        **{k: (round(v, 5) if k.startswith("val") else v) for k, v in metrics.items()},
        "checkpoint": str(loop.model_path),
    }
    samples: dict[str, Any] = {}
    if cfg.grid.samples_per_class:
        from harness.nn.models.diffusion_generator import DiffusionGenerator

        gen = DiffusionGenerator(
            pair.ema,
            name=f"{cfg.kind}-tiny",
            kind=cfg.kind,
            sampling=cfg.sampling,
            image_size=cfg.data.image_size,
            clip_denoised=cfg.kind == "ddpm",
        )
        labels = torch.arange(NUM_CLASSES).repeat_interleave(cfg.grid.samples_per_class)
        images = gen.generate(labels, torch.Generator().manual_seed(cfg.grid.seed)).numpy()
        grid = out / "samples_grid.png"
        write_grid(images, cfg.grid.samples_per_class, va_x, va_y, grid, NUM_CLASSES)
        samples = {
            "grid": str(grid),
            "sampling": cfg.sampling.to_dict(),
            "seed": cfg.grid.seed,
            "clip_denoised": gen.clip_denoised,
        }
    model_info = {
        "name": MODEL_NAMES[cfg.kind],
        "kind": cfg.kind,
        "weights": "ema",
        "num_params": sum(p.numel() for p in net.parameters()),
        "config": cfg.model.to_dict(),
    }
    return training.finish_run(
        loop,
        summary,
        pair.ema.state_dict(),  # the EMA weights are the ones sampled
        export_to=cfg.export,
        publish=publish,
        trainer="diffusion-tiny",
        model=model_info,
        metrics=metrics,
        device=device,
        extra={"train_images": len(train_x), "val_images": len(val_x)},
        samples=samples,
        metric_provenance={
            "val_loss": "held-out training loss at fixed (t, noise) (seed 1234), raw / EMA / initial net"
        },
        notes=["not paper-comparable: tiny pixel-space model, embedded natural patches, not ImageNet"],
    )


# resolved against the config file's folder
train_diffusion.path_keys = ("export",)
