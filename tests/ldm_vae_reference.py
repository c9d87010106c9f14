"""Independent reference for the VAE tests: the CompVis LDM ``AutoencoderKL`` written from
``ldm/modules/diffusionmodules/model.py`` (Encoder / Decoder, ``down.i.block.j`` /
``down.i.attn.j`` / ``up.i.block.j``, ``mid.block_1 / attn_1 / block_2``, single-head attention as
1x1 convs ``q k v proj_out``, ``quant_conv`` / ``post_quant_conv``), with the released key names.
The harness itself runs diffusers' ``AutoencoderKL`` (baselines/vae.py); this module is what its
key map and block-type configs are checked against. No diffusers import here.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = ()
    z_channels: int = 4
    embed_dim: int = 4
    resolution: int = 256
    in_channels: int = 3
    out_ch: int = 3

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


SD_VAE = VAEConfig()  # stabilityai/sd-vae-ft-ema / -mse (kl-f8), scale factor 0.18215
VA_VAE = VAEConfig(ch_mult=(1, 1, 2, 2, 4), attn_resolutions=(16,), z_channels=32, embed_dim=32)  # f16d32


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, hh, ww = h.shape
        q, k, v = (m(h).reshape(b, c, hh * ww).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj_out(out.transpose(1, 2).reshape(b, c, hh, ww))


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _mid(c: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)
    return mid


class Encoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, cfg.ch, 3, 1, 1)
        mults, res = (1, *cfg.ch_mult), cfg.resolution
        self.down = nn.ModuleList()
        for i, m in enumerate(cfg.ch_mult):
            level, cin, cout = nn.Module(), cfg.ch * mults[i], cfg.ch * m
            level.block = nn.ModuleList([ResnetBlock(cin if j == 0 else cout, cout) for j in range(cfg.num_res_blocks)])
            level.attn = nn.ModuleList(
                [AttnBlock(cout) for _ in range(cfg.num_res_blocks)] if res in cfg.attn_resolutions else []
            )
            if i != len(cfg.ch_mult) - 1:
                level.downsample = Downsample(cout)
                res //= 2
            self.down.append(level)
        c = cfg.ch * cfg.ch_mult[-1]
        self.mid = _mid(c)
        self.norm_out, self.conv_out = _norm(c), nn.Conv2d(c, 2 * cfg.z_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        c = cfg.ch * cfg.ch_mult[-1]
        res = cfg.resolution // cfg.downsample
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, 1, 1)
        self.mid = _mid(c)
        levels: list[nn.Module] = []
        for i in reversed(range(len(cfg.ch_mult))):
            level, cout = nn.Module(), cfg.ch * cfg.ch_mult[i]
            level.block = nn.ModuleList(
                [ResnetBlock(c if j == 0 else cout, cout) for j in range(cfg.num_res_blocks + 1)]
            )
            level.attn = nn.ModuleList(
                [AttnBlock(cout) for _ in range(cfg.num_res_blocks + 1)] if res in cfg.attn_resolutions else []
            )
            c = cout
            if i != 0:
                level.upsample = Upsample(c)
                res *= 2
            levels.insert(0, level)
        self.up = nn.ModuleList(levels)
        self.norm_out, self.conv_out = _norm(c), nn.Conv2d(c, cfg.out_ch, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for level in reversed(self.up):
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """LDM AutoencoderKL: ``encode`` -> posterior mean (the latents the baselines use at
    evaluation are sampled or mean; only ``decode`` is on the generation path)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.quant_conv = nn.Conv2d(2 * cfg.z_channels, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        mean, _ = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))
