"""LightningDiT-XL/1 (hustvl/LightningDiT) on VA-VAE f16d32 latents (16x16x32).

Network: DiT's adaLN-Zero with RMSNorm, SwiGLU, 2D RoPE (QK-norm off in the released config),
patch 1, velocity output (``learn_sigma`` off). Sampling (``configs/reproductions/
lightningdit_xl_vavae_f16d32_800ep_cfg.yaml``): Euler ODE, 250 grid points, timestep_shift 0.3,
cfg 6.7 on the first 3 of 32 channels, no guidance while t < 0.125. Sampled latents are
de-normalised ``z * std / multiplier + mean`` (``latents_stats.pt``, multiplier 1.0) and decoded by
VA-VAE (``baselines.vae.va_vae``, a diffusers ``AutoencoderKL`` config); pixels ``clamp(127.5 x + 128)``.

Checkpoint: weights under ``["ema"]`` (strict). EVA's RoPE keeps its cos/sin tables as buffers;
if a checkpoint carries them (``feat_rope.freqs_cos/sin``) they are checked against our table
and dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from baselines.dit import _dtype, _on_meta, _options, read_ema_or_raw, resolve_config
from harness.core.errors import UserError
from harness.core.interfaces import DiffusionSampling
from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, load_strict
from harness.nn.layers.dit_blocks import DiT, DiTConfig
from harness.nn.models.diffusion_generator import DiffusionGenerator

XL_1 = DiTConfig(
    input_size=16,
    patch_size=1,
    in_channels=32,
    hidden_size=1152,
    depth=28,
    num_heads=16,
    learn_sigma=False,
    rmsnorm=True,
    swiglu=True,
    rope=True,
    qk_norm=False,
)
SAMPLING = DiffusionSampling(
    steps=250, solver="euler", cfg_scale=6.7, cfg_interval=(0.125, 1.0), cfg_first3=True, timestep_shift=0.3
)
ROPE_KEYS = ("feat_rope.freqs_cos", "feat_rope.freqs_sin")


def _check_rope_buffers(model_cfg: DiTConfig, sd: dict, path: str) -> dict:
    if not any(k in sd for k in ROPE_KEYS):
        return sd
    table = DiT.rope_table(_TableOnly(model_cfg), torch.device("cpu"))
    for key, i in zip(ROPE_KEYS, (0, 1)):
        ours = table[..., i].repeat_interleave(2, dim=-1)  # EVA stores each pair's value twice
        if (
            key not in sd
            or tuple(sd[key].shape) != tuple(ours.shape)
            or not torch.allclose(sd[key].float(), ours, atol=1e-4)
        ):
            raise CheckpointError(f"{path}: {key} differs from the RoPE table this model computes")
    return {k: v for k, v in sd.items() if k not in ROPE_KEYS}


class _TableOnly:
    """Just enough of a DiT to call ``DiT.rope_table`` without building one."""

    def __init__(self, cfg: DiTConfig):
        self.cfg, self._rope = cfg, {}


def load_latent_stats(path: str | None, channels: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``latents_stats.pt`` -> (mean, std) shaped [1, C, 1, 1]; identity stats when no file."""
    if path is None:
        return torch.zeros(1, channels, 1, 1), torch.ones(1, channels, 1, 1)
    stats = load_state_dict(path, wrappers=())  # a flat {"mean", "std"} tensor file; one weights-only read
    if "mean" not in stats or "std" not in stats:
        raise CheckpointError(f"{path}: not a latents_stats.pt with 'mean' and 'std' (keys: {sorted(stats)[:4]})")
    mean, std = stats["mean"].float(), stats["std"].float()
    return mean.reshape(1, channels, 1, 1), std.reshape(1, channels, 1, 1)


def lightningdit_xl_1(
    *,
    device,
    checkpoint=None,
    tokenizer_checkpoint=None,
    dtype=None,
    tf32=None,
    random_weights=False,
    latent_stats=None,
    latent_multiplier: float = 1.0,
    config: str | Mapping[str, Any] = "XL/1",
    **options,
):
    """LightningDiT-XL/1 + VA-VAE; ``latent_stats`` = path of ``latents_stats.pt``; ``config`` "XL/1" or a
    mapping of DiTConfig fields over XL/1's (the small configuration of tests/fixtures/upstream)."""
    _options("lightningdit", options)
    if isinstance(config, str) and config != "XL/1":
        raise UserError(f"model.options.config: lightningdit has the released XL/1 only (or a mapping), got {config!r}")
    cfg = XL_1 if isinstance(config, str) else resolve_config(config, XL_1)
    from baselines.vae import decode as vae_decode
    from baselines.vae import va_vae

    if not random_weights and not (checkpoint and tokenizer_checkpoint and latent_stats):
        raise UserError(
            "lightningdit needs --set model.checkpoint=/path/lightningdit-xl-imagenet256-800ep.pt "
            "model.tokenizer_checkpoint=/path/vavae-imagenet256-f16d32-dinov2.pt "
            "model.options.latent_stats=/path/latents_stats.pt (or model.options.random_weights=true)"
        )
    if checkpoint:
        sd = _check_rope_buffers(cfg, read_ema_or_raw(checkpoint), checkpoint)
        model = load_strict(lambda: _on_meta(cfg), sd, checkpoint, "LightningDiT-XL/1", device)
    else:
        model = DiT(cfg).initialize_weights(torch.Generator().manual_seed(0)).to(device).eval()
    vae = va_vae(tokenizer_checkpoint, device)
    mean, std = (t.to(device) for t in load_latent_stats(latent_stats, cfg.in_channels))

    def decode(z: torch.Tensor) -> torch.Tensor:
        return vae_decode(vae, z * std / latent_multiplier + mean)

    return DiffusionGenerator(
        model,
        name="lightningdit-xl-1",
        kind="flow",
        sampling=SAMPLING,
        image_size=256,
        decode=decode,
        checkpoint=checkpoint,
        dtype=_dtype(dtype),
        tf32=tf32,
        decoder_modules=(vae,),
        extra_info={"vae": tokenizer_checkpoint, "latent_stats": latent_stats, "random_weights": random_weights},
    )
