"""KL autoencoders of the latent diffusion baselines, built as ``diffusers.AutoencoderKL``:
the SD VAE (DiT / SiT: ``stabilityai/sd-vae-ft-ema`` / ``-mse``, f8, 4 channels, scale 0.18215)
and VA-VAE (LightningDiT: ``hustvl/vavae-imagenet256-f16d32-dinov2``, f16, 32 channels).

VA-VAE is the CompVis LDM autoencoder with ``ch_mult (1,1,2,2,4)`` and self-attention at 16 px
(``attn_resolutions: [16]``) inside the last encoder level and the first decoder level, besides
the mid-block attention. diffusers expresses that as a config of the same class: block types
``AttnDownEncoderBlock2D`` / ``AttnUpDecoderBlock2D`` at those levels (resnet, attention, ...,
then down/up-sampling: LDM's order; one head of width C: LDM's single-head ``q k v proj_out``).
tests/test_baselines_vae.py checks this against an independent LDM implementation. So one class
serves both; only the key names differ from the released checkpoints.

Inputs: a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors`` / ``.bin``,
loaded offline by ``from_pretrained``) or an LDM-layout file (``.ckpt`` / ``.pt`` / ``.pth`` /
``.safetensors``, e.g. ``vae-ft-ema-560000-ema-pruned.safetensors`` or the VA-VAE ``.pt``)
whose keys ``ldm_to_diffusers`` renames (diffusers' own ``from_single_file`` converter files
attention inside levels under the resnets, so it cannot read VA-VAE). Random weights come from
the configs written below: no file, no download.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.nn.checkpoints.checkpoint import CheckpointError, check_state_dict, is_planning, load_state_dict

SD_SCALE_FACTOR = 0.18215
# stabilityai/sd-vae-ft-ema (and -mse) config.json, the keys that shape the network
SD_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    act_fn="silu",
    norm_num_groups=32,
    sample_size=256,
    scaling_factor=SD_SCALE_FACTOR,
)
# VA-VAE f16d32 (LightningDiT tokenizer/configs/vavae_f16d32.yaml: ch 128, ch_mult [1,1,2,2,4],
# num_res_blocks 2, attn_resolutions [16], z_channels 32, embed_dim 32); latent scaling is done
# by LightningDiT's latents_stats.pt, not by scaling_factor.


def ldm_vae_config(
    *,
    ch: int,
    ch_mult: tuple[int, ...],
    num_res_blocks: int,
    attn_resolutions: tuple[int, ...],
    resolution: int,
    z_channels: int,
    scaling_factor: float = 1.0,
) -> dict[str, Any]:
    """The ``diffusers.AutoencoderKL`` config of a CompVis LDM autoencoder ``ddconfig``: level i works at
    ``resolution / 2**i`` and gets attention after each resnet where that is in ``attn_resolutions``
    (diffusers' ``Attn*Block2D``); decoder levels count the other way round."""
    attn = [resolution // 2**i in attn_resolutions for i in range(len(ch_mult))]
    return dict(
        in_channels=3,
        out_channels=3,
        latent_channels=z_channels,
        block_out_channels=tuple(ch * m for m in ch_mult),
        layers_per_block=num_res_blocks,
        down_block_types=tuple("AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in attn),
        up_block_types=tuple("AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in reversed(attn)),
        act_fn="silu",
        norm_num_groups=32,
        sample_size=resolution,
        scaling_factor=scaling_factor,
    )


VA_VAE_CONFIG: dict[str, Any] = ldm_vae_config(
    ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256, z_channels=32
)
# training-only parts of released VA-VAE / LDM checkpoints: discriminator + LPIPS, the VF loss's
# projection and DINOv2 teacher (LightningDiT tokenizer/autoencoder.py loads with strict=False and
# filters the same), LDM's EMA copy
TRAINING_ONLY_PREFIXES = ("loss.", "linear_proj.", "foundation_model.", "model_ema.")
LDM_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")

# LDM name -> diffusers name (after ``encoder.`` / ``decoder.``; ``quant_conv`` / ``post_quant_conv``
# unchanged); n = len(ch_mult), decoder levels count the other way round:
#   down.i.block.j / down.i.attn.j / down.i.downsample -> down_blocks.i.resnets.j / .attentions.j / .downsamplers.0
#   up.i.block.j / up.i.attn.j / up.i.upsample         -> up_blocks.(n-1-i).resnets.j / .attentions.j / .upsamplers.0
#   mid.block_1 / mid.block_2 / mid.attn_1             -> mid_block.resnets.0 / .resnets.1 / .attentions.0
#   leaves: nin_shortcut -> conv_shortcut; attention norm q k v proj_out -> group_norm to_q to_k to_v to_out.0;
#   norm_out -> conv_norm_out (norm1 norm2 conv1 conv2 conv_in conv_out unchanged)
_LEAF = {
    "nin_shortcut": "conv_shortcut",
    "norm": "group_norm",
    "q": "to_q",
    "k": "to_k",
    "v": "to_v",
    "proj_out": "to_out.0",
    "norm_out": "conv_norm_out",
}


def ldm_to_diffusers_key(key: str, num_levels: int) -> str:
    """One LDM ``AutoencoderKL`` key (CompVis ``ldm/modules/diffusionmodules/model.py``) -> its
    diffusers ``AutoencoderKL`` name. ``num_levels`` = ``len(ch_mult)``."""
    m = re.fullmatch(r"(encoder|decoder)\.(.+)\.(weight|bias)", key)
    if m is None:
        return key  # quant_conv / post_quant_conv: same names
    part, body, leaf = m.groups()
    body = re.sub(r"^mid\.block_(\d)", lambda g: f"mid_block.resnets.{int(g[1]) - 1}", body)
    body = body.replace("mid.attn_1", "mid_block.attentions.0")
    body = re.sub(r"^down\.(\d+)\.block\.", r"down_blocks.\1.resnets.", body)
    body = re.sub(r"^down\.(\d+)\.attn\.", r"down_blocks.\1.attentions.", body)
    body = re.sub(r"^down\.(\d+)\.downsample\.", r"down_blocks.\1.downsamplers.0.", body)
    body = re.sub(r"^up\.(\d+)\.", lambda g: f"up.{num_levels - 1 - int(g[1])}.", body)
    body = re.sub(r"^up\.(\d+)\.block\.", r"up_blocks.\1.resnets.", body)
    body = re.sub(r"^up\.(\d+)\.attn\.", r"up_blocks.\1.attentions.", body)
    body = re.sub(r"^up\.(\d+)\.upsample\.", r"up_blocks.\1.upsamplers.0.", body)
    *head, last = body.split(".")
    return ".".join([part, *head, _LEAF.get(last, last), leaf])


def ldm_to_diffusers(sd: dict[str, torch.Tensor], num_levels: int) -> dict[str, torch.Tensor]:
    """Rename an LDM-layout state dict for diffusers (training-only entries dropped); attention
    ``q k v proj_out`` are 1x1 convs in LDM and ``nn.Linear`` in diffusers, so their
    ``[C, C, 1, 1]`` weights become ``[C, C]``."""
    out = {}
    for k, v in sd.items():
        if k.startswith(TRAINING_ONLY_PREFIXES):
            continue
        new = ldm_to_diffusers_key(k, num_levels)
        if re.search(r"attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$", new) and v.ndim == 4:
            v = v[:, :, 0, 0]
        out[new] = v
    return out


def _diffusers_vae_class():
    try:
        from diffusers import AutoencoderKL
    except ImportError:  # a declared dependency (pyproject.toml); only a broken install lands here
        raise CheckpointError("the VAEs need the 'diffusers' package (pip install diffusers)") from None
    return AutoencoderKL


def build_vae(
    config: dict[str, Any], checkpoint: str | os.PathLike | None = None, device: Any = "cpu", *, what: str = "VAE"
) -> nn.Module:
    """``diffusers.AutoencoderKL(**config)``: random weights (speed runs) when ``checkpoint`` is None,
    else a diffusers folder (its own ``config.json``, offline) or an LDM-layout file loaded strictly."""
    cls = _diffusers_vae_class()
    if checkpoint is None:
        with torch.random.fork_rng(devices=[]):  # same random weights on every build, global RNG untouched
            torch.manual_seed(0)
            return cls(**config).to(device).eval()
    p = Path(checkpoint)
    if p.is_dir() or p.name.startswith("diffusion_pytorch_model."):
        return _from_diffusers_folder(cls, p if p.is_dir() else p.parent, config, device, what)
    if p.suffix not in LDM_SUFFIXES:
        raise CheckpointError(
            f"{p}: expected a diffusers VAE folder or an LDM-layout checkpoint ({', '.join(LDM_SUFFIXES)})"
        )
    sd = ldm_to_diffusers(load_state_dict(p), len(config["block_out_channels"]))
    with torch.device("meta"):
        vae = cls(**config)
    check_state_dict(vae, sd, p, f"{what} (LDM layout)")
    if is_planning():
        return vae.eval()
    vae.load_state_dict(sd, strict=True, assign=True)
    return vae.to(device).eval()


def _from_diffusers_folder(cls, folder: Path, config: dict[str, Any], device: Any, what: str) -> nn.Module:
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a diffusers VAE folder (no config.json)")
    try:
        # .bin weights are read with torch.load(weights_only=True) by diffusers; no accelerate here
        vae = cls.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as e:  # missing/corrupt weights, wrong layout
        raise CheckpointError(
            f"{folder}: not a loadable diffusers AutoencoderKL ({str(e).splitlines()[0][:160]})"
        ) from None
    shape_keys = ("latent_channels", "block_out_channels", "down_block_types", "up_block_types", "layers_per_block")
    wrong = [k for k in shape_keys if tuple(_as_tuple(vae.config[k])) != tuple(_as_tuple(config[k]))]
    if wrong:
        raise CheckpointError(
            f"{folder}: config.json is not the {what} ({wrong[0]}: {vae.config[wrong[0]]} vs {config[wrong[0]]})"
        )
    return vae.to(device).eval()


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (list, tuple)) else (x,)


def sd_vae(checkpoint: str | os.PathLike | None = None, device: Any = "cpu") -> nn.Module:
    return build_vae(SD_VAE_CONFIG, checkpoint, device, what="SD VAE (sd-vae-ft-ema / -mse)")


def va_vae(checkpoint: str | os.PathLike | None = None, device: Any = "cpu") -> nn.Module:
    return build_vae(VA_VAE_CONFIG, checkpoint, device, what="VA-VAE f16d32")


def decode(vae: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Decoded images in [-1, 1] (not clamped here: the generator clamps when it quantises)."""
    return vae.decode(z).sample


def sd_decode(vae: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """DiT's ``sample.py``: ``vae.decode(samples / 0.18215).sample``."""
    return decode(vae, z / SD_SCALE_FACTOR)
