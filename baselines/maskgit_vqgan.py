"""MaskGIT-VQGAN, the tokenizer under RAR and the pixel decoder under TiTok.

Facts from bytedance/1d-tokenizer ``modeling/modules/maskgit_vqgan.py`` and ``modeling/titok.py``
(``PretrainedTokenizer``):

- CNN without attention; every conv uses TensorFlow SAME padding (``Conv2dSame``); GroupNorm(32,
  eps 1e-6), swish; downsampling by 2x2 average pooling, upsampling by nearest x2 + 3x3 conv; two
  ResBlocks per level and in each mid block; ``hidden_channels`` 128, ``channel_mult``
  (1, 1, 2, 2, 4), ``z_channels`` 256; codebook 1024 x 256, plain (not normalised) nearest code.
- Bias: ``conv_in`` of the encoder and both ResBlock convs have none; the other convs do.
- QUIRK (kept so ``maskgit-vqgan-imagenet-f16-256.bin`` loads strictly): when a ResBlock changes
  width, its ``nin_shortcut`` is a 1x1 conv out -> out applied to the block's *output*
  (``h + nin(h)``), not to the residual input.
- The decoder's ``up`` list is stored lowest index = highest resolution and run in reverse.
- Images in [0, 1]; decoded output clamped to [0, 1]; uint8 by ``clamp * 255`` truncation (RAR's
  and TiTok's sampling scripts). The ``.bin`` is a raw state dict
  (``encoder.*``, ``decoder.*``, ``quantize.embedding.weight``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.interfaces import check_images, from_uint8
from harness.nn.layers.vq import VectorQuantizer
from harness.nn.models.model_tokenizer import ModelTokenizer

CHECKPOINT_NAME = "maskgit-vqgan-imagenet-f16-256.bin"


@dataclasses.dataclass(frozen=True)
class PixelVQConfig:
    hidden_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    codebook_size: int = 1024
    image_size: int = 256
    dropout: float = 0.0

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** (len(self.channel_mult) - 1)

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding (extra pixel at the bottom / right when odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        if any(p for pair in pads for p in pair):
            x = F.pad(x, [*pads[1], *pads[0]])
        return super().forward(x)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), Conv2dSame(cin, cout, 3, bias=False)
        self.norm2, self.conv2 = _norm(cout), Conv2dSame(cout, cout, 3, bias=False)
        self.dropout = nn.Dropout(dropout)
        # the quirk: out -> out, applied to the output (see module doc)
        self.nin_shortcut = Conv2dSame(cout, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + (x if self.nin_shortcut is None else self.nin_shortcut(h))


class _Level(nn.Module):
    def __init__(self, cin: int, cout: int, n: int, dropout: float, upsample: bool):
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(cin if j == 0 else cout, cout, dropout) for j in range(n))
        if upsample:
            self.upsample_conv = Conv2dSame(cout, cout, 3)


class PixelEncoder(nn.Module):
    def __init__(self, cfg: PixelVQConfig):
        super().__init__()
        ch, mult = cfg.hidden_channels, cfg.channel_mult
        self.conv_in = Conv2dSame(3, ch, 3, bias=False)
        ins = (1,) + tuple(mult)
        self.down = nn.ModuleList(
            _Level(ch * ins[i], ch * mult[i], cfg.num_res_blocks, cfg.dropout, False) for i in range(len(mult))
        )
        c = ch * mult[-1]
        self.mid = nn.ModuleList(ResnetBlock(c, c, cfg.dropout) for _ in range(cfg.num_res_blocks))
        self.norm_out = _norm(c)
        self.conv_out = Conv2dSame(c, cfg.z_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i, level in enumerate(self.down):
            for block in level.block:
                h = block(h)
            if i != len(self.down) - 1:
                h = F.avg_pool2d(h, kernel_size=2, stride=2)
        for block in self.mid:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class PixelDecoder(nn.Module):
    def __init__(self, cfg: PixelVQConfig):
        super().__init__()
        ch, mult, n = cfg.hidden_channels, cfg.channel_mult, cfg.num_res_blocks
        c = ch * mult[-1]
        self.conv_in = Conv2dSame(cfg.z_channels, c, 3)
        self.mid = nn.ModuleList(ResnetBlock(c, c, cfg.dropout) for _ in range(n))
        last = len(mult) - 1
        self.up = nn.ModuleList(
            _Level(ch * mult[min(i + 1, last)], ch * mult[i], n, cfg.dropout, upsample=i != 0) for i in range(len(mult))
        )
        self.norm_out = _norm(ch * mult[0])
        self.conv_out = Conv2dSame(ch * mult[0], 3, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample_conv"):
                h = level.upsample_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class MaskGITVQGAN(nn.Module):
    def __init__(self, cfg: PixelVQConfig = PixelVQConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = PixelEncoder(cfg)
        self.decoder = PixelDecoder(cfg)
        self.quantize = VectorQuantizer(cfg.codebook_size, cfg.z_channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> raster codes ``[B, grid*grid]``."""
        z = self.encoder(x).permute(0, 2, 3, 1)
        return self.quantize.codes(z).flatten(1)

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        g = math.isqrt(codes.shape[1])
        return self.quantize.lookup(codes).view(codes.shape[0], g, g, -1).permute(0, 3, 1, 2)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> [0, 1] images (clamped, as upstream)."""
        return self.decoder(self.codes_to_latent(codes)).clamp(0.0, 1.0)


def build(cfg: PixelVQConfig = PixelVQConfig(), device: torch.device | str = "cpu") -> MaskGITVQGAN:
    with torch.device("meta"):
        model = MaskGITVQGAN(cfg)
    if torch.device(device).type != "meta":
        from baselines.llamagen import _init_default

        model = model.to_empty(device=device)
        _init_default(model)
        n = cfg.codebook_size
        nn.init.uniform_(model.quantize.embedding.weight, -1.0 / n, 1.0 / n)
    return model


def load(path, cfg: PixelVQConfig = PixelVQConfig(), device: torch.device | str = "cpu") -> MaskGITVQGAN:
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict

    return load_strict(lambda: build(cfg, "meta"), load_state_dict(path), path, "MaskGIT-VQGAN", device)


class MaskGITTokenizer(ModelTokenizer):
    quantization = "truncate"  # clamp(0, 1) * 255 -> uint8 (RAR / TiTok sampling scripts)

    def __init__(self, model, name: str = "maskgit-vqgan", checkpoint: str | None = None):
        super().__init__(model, name, checkpoint)

    @property
    def device(self) -> torch.device:
        return self.model.quantize.embedding.weight.device

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.image_size)
        return self.model.encode(from_uint8(images.to(self.device), (0.0, 1.0))).to(images.device)

    @torch.inference_mode()
    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode_codes(codes.to(self.device))
