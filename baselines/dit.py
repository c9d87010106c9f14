"""DiT (facebookresearch/DiT): adaLN-Zero transformer over SD-VAE latents (32x32x4 at 256 px,
scale 0.18215), DDPM with learned variance, 250 ancestral steps, CFG 1.5 on the first 3 channels.

Factories (targets in harness/core/plugins.py): ``dit_xl_2`` (released ``DiT-XL-2-256x256.pt``, a raw
EMA state dict, or a training checkpoint's ``["ema"]``, loaded strictly) and ``dit_tiny`` (the
committed tiny pixel-space DDPM). ``random_weights=True`` builds any named config without files
(speed measurements): the network gets DiT's init, the VAE diffusers' default init. ``config`` is a
named size (``XL/2``, ``B/4`` ...) or a mapping of ``DiTConfig`` fields (the small configurations
of tests/fixtures/upstream).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.core.errors import UserError
from harness.core.interfaces import DiffusionSampling
from harness.nn.checkpoints.checkpoint import EMA_FIRST, CheckpointError, load_state_dict, load_strict, read_metadata
from harness.nn.layers.dit_blocks import DiT, DiTConfig, named_config
from harness.nn.models.diffusion_generator import DiffusionGenerator

DIT_XL_SAMPLING = DiffusionSampling(steps=250, solver="ddpm", cfg_scale=1.5, cfg_first3=True)  # sample_ddp.py
WEIGHTS = Path(__file__).resolve().parent / "weights"


def _dtype(dtype):
    return dtype or torch.float32


def load_dit(cfg: DiTConfig, path: str | None, device, *, what: str, generator_seed: int = 0) -> DiT:
    """Strict load (raw state dict, ``["ema"]`` or ``["model"]``), or DiT's init when ``path`` is None."""
    if path is None:
        return DiT(cfg).initialize_weights(torch.Generator().manual_seed(generator_seed)).to(device).eval()
    return load_strict(lambda: _on_meta(cfg), read_ema_or_raw(path), path, what, device)


def read_ema_or_raw(path: str) -> dict[str, torch.Tensor]:
    """The ``["ema"]`` sub-dict of a training checkpoint (DiT, LightningDiT), else the raw / usual
    wrapped state dict (the released DiT-XL-2-256x256.pt is raw EMA weights); one mapped read."""
    return load_state_dict(path, wrappers=EMA_FIRST)


def resolve_config(config: str | Mapping[str, Any], base: DiTConfig | None = None) -> DiTConfig:
    """``model.options.config``: a named size, or DiTConfig fields over ``base`` (a small test model)."""
    from harness.core.config import ConfigError, from_dict

    try:
        if isinstance(config, Mapping):
            return from_dict(DiTConfig, {**(base.to_dict() if base else {}), **config}, "model.options.config")
        return named_config(config)
    except (ConfigError, ValueError, TypeError) as e:
        raise UserError(f"model.options.config: {e}") from None


def _on_meta(cfg: DiTConfig) -> DiT:
    with torch.device("meta"):
        return DiT(cfg)


def sd_vae_decoder(vae_path: str | None, device, random_weights: bool):
    """``decode(z)``: SD VAE (diffusers ``AutoencoderKL``) decode of z / 0.18215 (DiT's sample.py)."""
    from baselines.vae import sd_decode, sd_vae

    if not vae_path and not random_weights:
        raise UserError(
            "the SD VAE is required: --set model.tokenizer_checkpoint=/path/sd-vae-ft-ema "
            "(diffusers folder or LDM-layout file), or model.options.random_weights=true"
        )
    vae = sd_vae(vae_path or None, device)
    return (lambda z: sd_decode(vae, z)), vae


def _options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise UserError(f"{name}: unknown option(s) {', '.join(sorted(options))}")


def sd_vae_generator(
    family: str,
    kind: str,
    sampling: DiffusionSampling,
    released: str,
    *,
    device,
    checkpoint,
    tokenizer_checkpoint,
    dtype,
    tf32,
    random_weights: bool,
    config: str | Mapping[str, Any],
    options: dict[str, Any],
):
    """A DiT-network family on SD-VAE latents (DiT: DDPM; SiT: flow), strict load of the released file."""
    _options(family, options)
    cfg = resolve_config(config)
    if not checkpoint and not random_weights:
        raise UserError(
            f"{family} needs the released weights: --set model.checkpoint=/path/{released} "
            "(or model.options.random_weights=true for speed runs)"
        )
    paper_name = {"dit": "DiT", "sit": "SiT"}[family]
    label = config if isinstance(config, str) else "custom"
    model = load_dit(cfg, checkpoint, device, what=f"{paper_name}-{label}")
    decode, vae = sd_vae_decoder(tokenizer_checkpoint, device, random_weights)
    return DiffusionGenerator(
        model,
        name=f"{family}-{label.lower().replace('/', '-')}",
        kind=kind,
        sampling=sampling,
        image_size=256,
        decode=decode,
        checkpoint=checkpoint,
        dtype=_dtype(dtype),
        tf32=tf32,
        decoder_modules=(vae,),
        extra_info={"vae": tokenizer_checkpoint, "random_weights": random_weights},
    )


def dit_xl_2(
    *,
    device,
    checkpoint=None,
    tokenizer_checkpoint=None,
    dtype=None,
    tf32=None,
    random_weights=False,
    config: str | Mapping[str, Any] = "XL/2",
    **options,
):
    """DiT-XL/2 256 px (675M) + SD VAE; ``config`` picks another named size (``B/4`` ...)."""
    return sd_vae_generator(
        "dit",
        "ddpm",
        DIT_XL_SAMPLING,
        "DiT-XL-2-256x256.pt",
        device=device,
        checkpoint=checkpoint,
        tokenizer_checkpoint=tokenizer_checkpoint,
        dtype=dtype,
        tf32=tf32,
        random_weights=random_weights,
        config=config,
        options=options,
    )


def load_tiny(path: Path, device, kind: str) -> tuple[DiT, DiffusionSampling, dict[str, str]]:
    """A committed tiny model: config, kind and sampling preset from the safetensors metadata."""
    from harness.core.config import from_dict

    meta = read_metadata(path)
    try:
        cfg = from_dict(DiTConfig, json.loads(meta["dit_config"]), "dit_config")
        sampling = from_dict(DiffusionSampling, json.loads(meta["sampling"]), "sampling")
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: no valid tiny-DiT metadata ({e})") from None
    if meta.get("kind") != kind:
        raise CheckpointError(f"{path}: holds a {meta.get('kind')!r} model, expected {kind!r}")
    sd = load_state_dict(path)
    return load_strict(lambda: _on_meta(cfg), sd, path, f"tiny {kind} DiT", device), sampling, meta


def dit_tiny(*, device, checkpoint=None, tokenizer_checkpoint=None, dtype=None, tf32=None, **options):
    """The committed tiny pixel-space DiT (DDPM, learned variance) trained on the embedded patches;
    predicted x0 clamped to [-1, 1] as ADM samples its pixel-space models (``clip_denoised``)."""
    _options("dit-tiny", options)
    path = Path(checkpoint) if checkpoint else WEIGHTS / "dit_tiny.safetensors"
    model, sampling, meta = load_tiny(path, device, "ddpm")
    return DiffusionGenerator(
        model,
        name="dit-tiny",
        kind="ddpm",
        sampling=sampling,
        image_size=model.cfg.input_size,
        checkpoint=str(path),
        dtype=_dtype(dtype),
        tf32=tf32,
        clip_denoised=True,
        extra_info={"step": meta.get("step"), "pixel_space": True},
    )
