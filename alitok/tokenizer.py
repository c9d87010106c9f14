"""The AliTok tokenizer: bidirectional ViT encoder, VQ, and a causal (stage 1) or buffer-token
bidirectional (stage 2) ViT decoder, with the official parameter names (ali-vilab/alitok
``modeling/alitok.py``; tested against its own files in tests/test_upstream_fixtures_alitok.py).

Sequence layouts (T = K prefix latents + G*G image latents, G = image_size / patch_size):
- encoder: ``[G*G patch tokens | T latent tokens]``; only the T latent outputs are kept.
- stage-1 decoder: ``[1 start token | K prefix | G*G image]``, causal; image latent p decodes
  patch p (raster order); the aux head decodes ``[patch(0,0) | first patch row]`` from the K
  prefix outputs, so the prefix carries the first row that causal decoding would lack.
- stage-2 decoder: ``[B buffer tokens | K prefix | G*G image]``, full attention; only the image
  outputs are decoded. The buffer tokens live in ``decoder.class_embedding`` (official name).

Images are float [0,1] NCHW inside; the ``Tokenizer`` plugin converts from and to uint8 with
AliTok's truncating rule.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from harness.core.interfaces import Tokenizer, check_images, from_uint8, to_uint8
from harness.core.io import sha256_file
from harness.nn.layers.vit import Transformer, init_vit_weights
from harness.nn.layers.vq import VectorQuantizer

STAGES = ("stage1", "stage2")


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
    """Architecture; every default is the official AliTok value (AliTok.pth)."""

    image_size: int = 256
    patch_size: int = 16
    num_prefix_tokens: int | None = None  # null = 1 + grid width (official 17); 0 = no prefix
    codebook_size: int = 4096
    token_dim: int = 32
    encoder_width: int = 768
    encoder_layers: int = 12
    encoder_heads: int = 12
    decoder_width: int = 1024
    decoder_layers: int = 24
    decoder_heads: int = 16
    mlp_ratio: float = 4.0
    buffer_tokens: int = 32  # stage-2 leading tokens (paper v3 variant: 64)
    encoder_attention: Literal["bidirectional", "causal"] = "bidirectional"
    decoder_attention: Literal["causal", "bidirectional"] = "causal"  # of the stage-1 decoder
    two_stage: bool = True  # false: inference decodes with the stage-1 decoder
    clustering_vq: bool = True  # online clustering codebook update in stage 1
    # LlamaGen's codebook_l2_norm: z and codes l2-normalised, lookup = cosine nearest code (official AliTok: off)
    codebook_l2_norm: bool = False
    vq_beta: float = 0.25
    init_std: float = 0.02  # trunc-normal std of Linear/Conv/Embedding weights (official 0.02)

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.num_prefix_tokens is not None and self.num_prefix_tokens < 0:
            raise ValueError(f"num_prefix_tokens must be >= 0 or null, got {self.num_prefix_tokens}")
        if self.buffer_tokens < 1:
            raise ValueError(f"buffer_tokens must be >= 1, got {self.buffer_tokens}")
        for name in ("codebook_size", "token_dim", "encoder_layers", "decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def prefix_tokens(self) -> int:
        return 1 + self.grid if self.num_prefix_tokens is None else self.num_prefix_tokens

    @property
    def num_tokens(self) -> int:
        return self.prefix_tokens + self.grid * self.grid

    @property
    def inference_stage(self) -> str:
        return "stage2" if self.two_stage else "stage1"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


OFFICIAL = TokenizerConfig()


def config_from_dict(data: dict[str, Any]) -> TokenizerConfig:
    from harness.core.config import from_dict

    return from_dict(TokenizerConfig, data, "model")


# ----------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------
class ToPixels(nn.Module):
    """``b (p1 p2 c) h w -> b c (h p1) (w p2)``: the parameter-free ``ffn.1`` of the official head."""

    def __init__(self, patch: int):
        super().__init__()
        self.patch = patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.patch
        x = x.view(b, p, p, 3, h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(b, 3, h * p, w * p)


def _pixel_head(width: int, patch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(width, patch * patch * 3, 1), ToPixels(patch))


def _tokens_to_grid(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[B, h*w, C] -> [B, C, h, w]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def encoder_time_mask(cfg: TokenizerConfig, device: torch.device | None = None) -> torch.Tensor:
    """Bool mask for ``encoder_attention: causal`` over ``[G*G patches | K prefix | G*G latents]``.

    Each token gets a raster time: patch p and image latent p have time p, the prefix latents
    time G-1 (they summarise the first row). A token sees only tokens whose time is <= its own, so
    image latent p depends on patches 0..p only (the paper's causal-encoder probe).
    """
    g2, k = cfg.grid * cfg.grid, cfg.prefix_tokens
    patch_t = torch.arange(g2, device=device)
    prefix_t = torch.full((k,), cfg.grid - 1, device=device)
    times = torch.cat([patch_t, prefix_t, patch_t])
    return times[None, :] <= times[:, None]


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        w, g2 = cfg.encoder_width, cfg.grid * cfg.grid
        self.cfg = cfg
        self.patch_embed = nn.Conv2d(3, w, cfg.patch_size, stride=cfg.patch_size)
        self.positional_embedding = nn.Parameter(torch.empty(g2, w))
        self.latent_token_positional_embedding = nn.Parameter(torch.empty(cfg.num_tokens, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.encoder_layers, cfg.encoder_heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(w)
        self.conv_out = nn.Conv2d(w, cfg.token_dim, 1)

    def forward(self, x: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """Float images [B,3,H,W] in [0,1] -> continuous latents [B, T, token_dim]."""
        b = x.shape[0]
        patches = self.patch_embed(x).flatten(2).transpose(1, 2) + self.positional_embedding
        latents = (latent_tokens + self.latent_token_positional_embedding).expand(b, -1, -1)
        seq = self.ln_pre(torch.cat([patches, latents.to(patches.dtype)], dim=1))
        mask = encoder_time_mask(self.cfg, x.device) if self.cfg.encoder_attention == "causal" else None
        seq = self.ln_post(self.transformer(seq, mask)[:, patches.shape[1] :])
        z = self.conv_out(seq.transpose(1, 2).unsqueeze(2))  # the official fake-2D (B, W, 1, T) layout
        return z.squeeze(2).transpose(1, 2)


class Decoder(nn.Module):
    """``leading`` learned tokens (1 start token in stage 1, buffer tokens in stage 2) then the
    T latents; ``attention`` "causal" (lower triangle) or "bidirectional"."""

    def __init__(self, cfg: TokenizerConfig, leading: int, attention: str, aux_head: bool):
        super().__init__()
        w = cfg.decoder_width
        self.cfg, self.leading, self.attention = cfg, leading, attention
        self.decoder_embed = nn.Linear(cfg.token_dim, w)
        self.class_embedding = nn.Parameter(torch.empty(leading, w))
        self.latent_token_positional_embedding = nn.Parameter(torch.empty(leading + cfg.num_tokens, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = Transformer(w, cfg.decoder_layers, cfg.decoder_heads, cfg.mlp_ratio)
        self.ln_post = nn.LayerNorm(w)
        self.ffn = _pixel_head(w, cfg.patch_size)
        self.conv_out = nn.Conv2d(3, 3, 1)
        if aux_head:
            self.ffn_aux = _pixel_head(w, cfg.patch_size)
            self.conv_out_aux = nn.Conv2d(3, 3, 1)
        self.has_aux = aux_head

    def forward(self, zq: torch.Tensor, with_aux: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantised latents [B,T,D] -> (image [B,3,H,W] in [0,1], aux strip [B,3,p,K*p] or None)."""
        b, k, g = zq.shape[0], self.cfg.prefix_tokens, self.cfg.grid
        x = self.decoder_embed(zq.to(self.decoder_embed.weight.dtype))
        x = torch.cat([self.class_embedding.expand(b, -1, -1).to(x.dtype), x], dim=1)
        x = self.ln_pre(x + self.latent_token_positional_embedding)
        x = self.ln_post(self.transformer(x, "causal" if self.attention == "causal" else None))
        image = torch.sigmoid(self.conv_out(self.ffn(_tokens_to_grid(x[:, self.leading + k :], g, g))))
        aux = None
        if with_aux and self.has_aux:
            prefix = _tokens_to_grid(x[:, self.leading : self.leading + k], 1, k)
            aux = torch.sigmoid(self.conv_out_aux(self.ffn_aux(prefix)))
        return image, aux


def aux_target(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``[top-left patch | first patch row]``: the [B,3,p,(1+W/p)*p] strip the K = 1 + G prefix
    outputs decode (prefix 0 -> patch (0,0), prefix 1..G -> first-row patches 0..G-1)."""
    return torch.cat([x[:, :, :patch, :patch], x[:, :, :patch, :]], dim=3)


class AliTok(nn.Module):
    """The whole tokenizer for one stage. ``stage="stage1"``: start token, causal (or
    ``decoder_attention``) decoder, aux head, ``embed_prob`` when ``clustering_vq``;
    ``stage="stage2"``: buffer tokens, bidirectional decoder, no aux head (the AliTok.pth layout)."""

    def __init__(self, cfg: TokenizerConfig, stage: str = "stage2"):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.cfg, self.stage = cfg, stage
        s1 = stage == "stage1"
        self.latent_tokens = nn.Parameter(torch.empty(cfg.num_tokens, cfg.encoder_width))
        self.encoder = Encoder(cfg)
        self.quantize = VectorQuantizer(
            cfg.codebook_size,
            cfg.token_dim,
            cfg.vq_beta,
            clustering=s1 and cfg.clustering_vq,
            l2_norm=cfg.codebook_l2_norm,
        )
        self.decoder = Decoder(
            cfg,
            leading=1 if s1 else cfg.buffer_tokens,
            attention=cfg.decoder_attention if s1 else "bidirectional",
            aux_head=s1 and cfg.prefix_tokens > 0,
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> AliTok:
        """Official init: trunc-normal 0.02 for Linear/Conv/Embedding (codebook included),
        LayerNorm (1,0), free parameters ``width**-0.5 * randn``."""
        init_vit_weights(self, generator, std=self.cfg.init_std)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim == 2 and name.rsplit(".", 1)[-1] in (
                    "latent_tokens",
                    "positional_embedding",
                    "latent_token_positional_embedding",
                    "class_embedding",
                ):
                    p.copy_(torch.randn(p.shape, generator=generator) * p.shape[1] ** -0.5)
        return self

    # -- pieces ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Float [B,3,H,W] in [0,1] -> (straight-through zq [B,T,D], codes [B,T], VQ losses)."""
        return self.quantize(self.encoder(x, self.latent_tokens))

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B,T] -> float images [B,3,H,W] in [0,1]."""
        if codes.ndim != 2 or codes.shape[1] != self.cfg.num_tokens:
            raise ValueError(f"codes must have shape [B, {self.cfg.num_tokens}], got {tuple(codes.shape)}")
        return self.decoder(self.quantize.lookup(codes))[0]

    def forward(self, x: torch.Tensor, quantize: bool = True) -> dict[str, Any]:
        """``quantize=False`` (a continuous warm-up) feeds the decoder the encoder output itself."""
        if quantize:
            zq, codes, losses = self.encode(x)
        else:
            zq = self.quantize.normalize(self.encoder(x, self.latent_tokens).float())
            codes = self.quantize.codes(zq.detach())
            zero = zq.new_zeros(())
            losses = {"vq_loss": zero, "commitment_loss": zero, "codebook_loss": zero}
        recon, aux = self.decoder(zq, with_aux=True)
        return {"recon": recon, "aux": aux, "codes": codes, **losses}


def build(
    cfg: TokenizerConfig,
    stage: str | None = None,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> AliTok:
    """A randomly initialised model (``device="meta"``: shapes only, no memory, no init)."""
    stage = stage or cfg.inference_stage
    with torch.device(device):
        model = AliTok(cfg, stage)
    if torch.device(device).type != "meta":
        model.reset_parameters(generator)
    return model


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
META_CONFIG, META_STAGE = "tokenizer_config", "tokenizer_stage"


def export_metadata(model: AliTok, **extra: Any) -> dict[str, Any]:
    return {META_CONFIG: json.dumps(model.cfg.to_dict(), sort_keys=True), META_STAGE: model.stage, **extra}


def load_model(
    path: str | os.PathLike,
    device: torch.device | str = "cpu",
    config: TokenizerConfig | None = None,
    stage: str | None = None,
) -> tuple[AliTok, dict[str, str]]:
    """Strictly load a tokenizer checkpoint. Our safetensors carry their config and stage in the
    metadata; an official ``.pth`` takes ``config`` (default: official) and its inference stage."""
    from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, load_strict, read_metadata

    sd = load_state_dict(path)
    if any(k.startswith("tokenizer.") for k in sd):  # a GAN training checkpoint: drop the discriminator
        sd = {k[len("tokenizer.") :]: v for k, v in sd.items() if k.startswith("tokenizer.")}
    meta = read_metadata(path)
    if config is None:
        if META_CONFIG in meta:
            try:
                config = config_from_dict(json.loads(meta[META_CONFIG]))
            except (ValueError, TypeError) as e:
                raise CheckpointError(f"{path}: bad tokenizer config in metadata ({e})") from None
        else:
            config = OFFICIAL
    stage = stage or meta.get(META_STAGE) or config.inference_stage
    model = load_strict(lambda: build(config, stage, device="meta"), sd, path, f"AliTok {stage} tokenizer", device)
    return model, meta


# ----------------------------------------------------------------------------------------------
# The plugin
# ----------------------------------------------------------------------------------------------
class AliTokTokenizer(Tokenizer):
    """uint8 NHWC <-> codes [B, T]; outputs come back on the device of the input."""

    quantization = "truncate"  # AliTok's own rule: clamp(0,1) * 255 -> uint8

    def __init__(
        self, model: AliTok, name: str = "alitok", checkpoint: str | None = None, checkpoint_sha256: str | None = None
    ):
        self.model = model.eval()
        self.name = name
        self.cfg = model.cfg
        self.image_size = model.cfg.image_size
        self.num_tokens = model.cfg.num_tokens
        self.codebook_size = model.cfg.codebook_size
        self.checkpoint, self.checkpoint_sha256 = checkpoint, checkpoint_sha256

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: torch.device | str = "cpu",
        name: str = "alitok",
        config: TokenizerConfig | None = None,
    ) -> AliTokTokenizer:
        model, _ = load_model(path, device, config)
        return cls(model, name=name, checkpoint=str(path), checkpoint_sha256=sha256_file(path))

    @property
    def device(self) -> torch.device:
        return self.model.latent_tokens.device

    def to(self, device: torch.device | str) -> AliTokTokenizer:
        self.model.to(device)
        return self

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.image_size)
        x = from_uint8(images.to(self.device), (0.0, 1.0))
        return self.model.encode(x)[1].to(images.device)

    @torch.inference_mode()
    def decode_float(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B,T] -> float [B,3,H,W] in [0,1] on the model device (before quantisation)."""
        return self.model.decode_codes(codes.to(self.device))

    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return to_uint8(self.decode_float(codes), (0.0, 1.0), self.quantization).to(codes.device)

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "stage": self.model.stage,
            "num_tokens": self.num_tokens,
            "codebook_size": self.codebook_size,
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "config": self.cfg.to_dict(),
        }


def tiny_checkpoint_path() -> Path:
    return Path(__file__).resolve().parent / "weights" / "tiny_tokenizer.safetensors"
