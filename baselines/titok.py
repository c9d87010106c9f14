"""TiTok: a 1D bidirectional ViT tokenizer (K latent tokens, L2-normalised VQ).

Facts from bytedance/1d-tokenizer ``modeling/titok.py``, ``modeling/modules/blocks.py``,
``modeling/quantizer/quantizer.py`` and ``configs/infer/TiTok/*.yaml``:

- encoder: patch-embed conv (p16) + class token + learned positions; K ``latent_tokens`` (a
  top-level parameter) with their own positions appended; ``ln_pre``; ``ResidualAttentionBlock``s
  (``nn.MultiheadAttention``: ``attn.in_proj_weight`` / ``in_proj_bias`` / ``out_proj``, GELU MLP
  ``c_fc`` / ``c_proj``); ``ln_post`` on the latent slots; 1x1 ``conv_out`` -> token_size.
- QUIRK (``is_legacy``, default True, kept so official weights load): after ``ln_post`` the
  encoder reshapes the ``[B, K, width]`` latents to ``[B, width, K, 1]`` *without* a permute.
- quantiser: codebook 4096 x 12; z and codes L2-normalised; nearest by squared distance.
- decoder: ``decoder_embed`` (token_size -> width); input ``[class | G*G mask tokens | K latents]``
  fully bidirectional; grid outputs -> ``ln_post`` -> legacy ``ffn`` (1x1 conv w -> 2w, Tanh,
  1x1 2w -> 1024) = logits over MaskGIT-VQGAN's codes; the released (stage-2) models decode
  ``softmax(logits) @ pixel_quantize.embedding`` with the fine-tuned MaskGIT ``pixel_decoder``.
  Non-legacy (single-stage) models predict pixels: 1x1 conv -> p*p*3 channels, the
  ``(p1 p2 c)`` pixel shuffle, and a 3x3 ``conv_out``; the tiny model uses that head.
- sizes: small 512 / 8 layers / 8 heads, base 768 / 12 / 12, large 1024 / 24 / 16; L-32, B-64,
  S-128 use the same size for encoder and decoder. Images in [0, 1]; decoded images clamped
  (sampling scripts), uint8 by truncation.

The state-dict names come from the shared ``harness.nn.layers.vit`` blocks plus a key map for the
``nn.MultiheadAttention`` names.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.maskgit_vqgan import PixelDecoder, PixelVQConfig
from harness.core.interfaces import check_images, from_uint8
from harness.nn.checkpoints.key_map import install_key_map
from harness.nn.layers.vit import Transformer, init_vit_weights
from harness.nn.models.model_tokenizer import ModelTokenizer

VIT_SIZES = {"small": (512, 8, 8), "base": (768, 12, 12), "large": (1024, 24, 16)}
TITOK_KEY_MAP = ((".attn.in_proj.weight.", ".attn.in_proj_weight."), (".attn.in_proj.bias.", ".attn.in_proj_bias."))


@dataclasses.dataclass(frozen=True)
class TiTokConfig:
    """Defaults are TiTok-L-32."""

    image_size: int = 256
    patch_size: int = 16
    enc_width: int = 1024
    enc_depth: int = 24
    enc_heads: int = 16
    dec_width: int = 1024
    dec_depth: int = 24
    dec_heads: int = 16
    num_latent_tokens: int = 32
    token_size: int = 12
    codebook_size: int = 4096
    use_l2_norm: bool = True
    commitment_cost: float = 0.25
    is_legacy: bool = True  # raw-reshape quirk + proxy-code head + MaskGIT pixel decoder
    pixel: PixelVQConfig = PixelVQConfig()  # the legacy pixel decoder (official: MaskGIT-VQGAN's, 1024 x 256 codes)
    init_std: float = 0.02  # trunc-normal std of Linear/Conv weights (upstream 0.02; tiny runs use ~width**-0.5)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return self.num_latent_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def titok_config(size: str, num_tokens: int, **overrides) -> TiTokConfig:
    w, d, h = VIT_SIZES[size]
    return TiTokConfig(
        enc_width=w,
        enc_depth=d,
        enc_heads=h,
        dec_width=w,
        dec_depth=d,
        dec_heads=h,
        num_latent_tokens=num_tokens,
        **overrides,
    )


TITOK_CONFIGS = {
    "titok-l-32": titok_config("large", 32),
    "titok-b-64": titok_config("base", 64),
    "titok-s-128": titok_config("small", 128),
}


def _embedding(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape))


class TiTokEncoder(nn.Module):
    def __init__(self, cfg: TiTokConfig):
        super().__init__()
        w, self.cfg = cfg.enc_width, cfg
        self.patch_embed = nn.Conv2d(3, w, cfg.patch_size, stride=cfg.patch_size, bias=True)
        self.class_embedding = _embedding(1, w)
        self.positional_embedding = _embedding(cfg.grid**2 + 1, w)
        self.latent_token_positional_embedding = _embedding(cfg.num_latent_tokens, w)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.enc_depth, cfg.enc_heads)
        self.ln_post = nn.LayerNorm(w)
        self.conv_out = nn.Conv2d(w, cfg.token_size, 1, bias=True)

    def forward(self, x: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """[0, 1] images -> ``[B, token_size, 1, K]``."""
        cfg, b = self.cfg, x.shape[0]
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(b, -1, -1).to(x.dtype), x], dim=1) + self.positional_embedding
        latents = (latent_tokens + self.latent_token_positional_embedding).expand(b, -1, -1).to(x.dtype)
        x = self.transformer(self.ln_pre(torch.cat([x, latents], dim=1)))
        z = self.ln_post(x[:, 1 + cfg.grid**2 :])
        k, w = cfg.num_latent_tokens, cfg.enc_width
        if cfg.is_legacy:
            z = z.reshape(b, w, k, 1)  # the quirk: no permute
        else:
            z = z.reshape(b, k, w, 1).permute(0, 2, 1, 3)
        return self.conv_out(z).reshape(b, cfg.token_size, 1, k)


class TiTokDecoder(nn.Module):
    def __init__(self, cfg: TiTokConfig):
        super().__init__()
        w, self.cfg = cfg.dec_width, cfg
        self.decoder_embed = nn.Linear(cfg.token_size, w, bias=True)
        self.class_embedding = _embedding(1, w)
        self.positional_embedding = _embedding(cfg.grid**2 + 1, w)
        self.mask_token = _embedding(1, 1, w)
        self.latent_token_positional_embedding = _embedding(cfg.num_latent_tokens, w)
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.dec_depth, cfg.dec_heads)
        self.ln_post = nn.LayerNorm(w)
        if cfg.is_legacy:
            self.ffn = nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.Tanh(), nn.Conv2d(2 * w, 1024, 1))
            self.conv_out = nn.Identity()
        else:
            self.ffn = nn.Sequential(nn.Conv2d(w, cfg.patch_size**2 * 3, 1))
            self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, zq: torch.Tensor) -> torch.Tensor:
        """``[B, token_size, 1, K]`` -> proxy-code logits ``[B, 1024, G, G]`` (legacy) or pixels."""
        cfg = self.cfg
        b, c, _, k = zq.shape
        x = self.decoder_embed(zq.reshape(b, c, k).transpose(1, 2))
        g, w = cfg.grid, cfg.dec_width
        masks = torch.cat([self.class_embedding.expand(b, 1, -1), self.mask_token.expand(b, g * g, -1)], dim=1)
        masks = masks.to(x.dtype) + self.positional_embedding
        x = torch.cat([masks, x + self.latent_token_positional_embedding[:k]], dim=1)
        x = self.transformer(self.ln_pre(x))
        x = self.ln_post(x[:, 1 : 1 + g * g]).transpose(1, 2).reshape(b, w, g, g)
        x = self.ffn(x.contiguous())
        if not cfg.is_legacy:  # 'b (p1 p2 c) h w -> b c (h p1) (w p2)'
            p = cfg.patch_size
            x = x.view(b, p, p, 3, g, g).permute(0, 3, 4, 1, 5, 2).reshape(b, 3, g * p, g * p)
        return self.conv_out(x)


class TiTok(nn.Module):
    def __init__(self, cfg: TiTokConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = TiTokEncoder(cfg)
        self.decoder = TiTokDecoder(cfg)
        self.latent_tokens = _embedding(cfg.num_latent_tokens, cfg.enc_width)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(cfg.codebook_size, cfg.token_size)
        if cfg.is_legacy:
            pix = cfg.pixel
            self.pixel_quantize = nn.Module()
            self.pixel_quantize.embedding = nn.Embedding(pix.codebook_size, pix.z_channels)
            self.pixel_decoder = PixelDecoder(pix)
        install_key_map(self, TITOK_KEY_MAP)

    def reset_parameters(self, generator: torch.Generator | None = None) -> TiTok:
        init_vit_weights(self, generator, std=self.cfg.init_std)
        for p in (
            self.latent_tokens,
            self.encoder.class_embedding,
            self.encoder.positional_embedding,
            self.encoder.latent_token_positional_embedding,
            self.decoder.class_embedding,
            self.decoder.positional_embedding,
            self.decoder.mask_token,
            self.decoder.latent_token_positional_embedding,
        ):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=generator) * p.shape[-1] ** -0.5)
        n = self.cfg.codebook_size
        nn.init.uniform_(self.quantize.embedding.weight, -1.0 / n, 1.0 / n, generator=generator)
        return self

    def codebook(self) -> torch.Tensor:
        w = self.quantize.embedding.weight.float()
        return F.normalize(w, dim=-1) if self.cfg.use_l2_norm else w

    def quantise(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``z [B, C, 1, K]`` -> (straight-through zq ``[B, C, 1, K]``, codes ``[B, K]``, losses), in fp32."""
        b, c, _, k = z.shape
        zf = z.float().permute(0, 2, 3, 1).reshape(-1, c)
        zn = F.normalize(zf, dim=-1) if self.cfg.use_l2_norm else zf
        emb = self.codebook()
        codes = torch.argmin(zn.pow(2).sum(1, keepdim=True) + emb.pow(2).sum(1) - 2 * zn @ emb.t(), dim=1)
        zq = emb[codes]
        commitment = self.cfg.commitment_cost * F.mse_loss(zq.detach(), zn)
        codebook = F.mse_loss(zq, zn.detach())
        zq = zn + (zq - zn).detach()
        losses = {"vq_loss": commitment + codebook, "commitment_loss": commitment, "codebook_loss": codebook}
        return zq.view(b, 1, k, c).permute(0, 3, 1, 2), codes.view(b, k), losses

    def encode(self, x: torch.Tensor):
        return self.quantise(self.encoder(x, self.latent_tokens))

    def decode(self, zq: torch.Tensor) -> torch.Tensor:
        out = self.decoder(zq)
        if self.cfg.is_legacy:  # proxy codes -> soft MaskGIT latent -> fine-tuned pixel decoder
            latent = torch.einsum("nchw,cd->ndhw", out.softmax(1), self.pixel_quantize.embedding.weight)
            out = self.pixel_decoder(latent)
        return out

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.cfg.codebook_size):
            raise ValueError(
                f"codes must lie in [0, {self.cfg.codebook_size}), got {int(codes.min())}..{int(codes.max())}"
            )
        b, k = codes.shape
        return self.decode(self.codebook()[codes.long()].view(b, 1, k, -1).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor):
        zq, codes, losses = self.encode(x)
        return self.decode(zq), codes, losses


def build(cfg: TiTokConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> TiTok:
    with torch.device("meta"):
        model = TiTok(cfg)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device).reset_parameters(generator)
    return model


def load(path, cfg: TiTokConfig, device: torch.device | str = "cpu") -> TiTok:
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict

    return load_strict(
        lambda: build(cfg, "meta"),
        load_state_dict(path),
        path,
        f"TiTok ({cfg.num_latent_tokens} tokens, width {cfg.enc_width})",
        device,
    )


class TiTokTokenizer(ModelTokenizer):
    quantization = "truncate"  # sample_imagenet_titok: clamp(0, 1) * 255 -> uint8

    def __init__(self, model, name: str = "titok-l-32", checkpoint: str | None = None):
        super().__init__(model, name, checkpoint)

    @property
    def device(self) -> torch.device:
        return self.model.latent_tokens.device

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.image_size)
        return self.model.encode(from_uint8(images.to(self.device), (0.0, 1.0)))[1].to(images.device)

    @torch.inference_mode()
    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        return self.model.decode_codes(codes.to(self.device)).clamp(0.0, 1.0)
