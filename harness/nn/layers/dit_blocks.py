"""DiT-family network (DiT, SiT, LightningDiT): adaLN-Zero blocks, patch / timestep / label
embedders, final layer, with the LightningDiT options (RMSNorm, SwiGLU, 2D RoPE, QK-norm).

State-dict names are upstream's (facebookresearch/DiT ``models.py``; SiT ``models.py`` is the same
file; hustvl/LightningDiT ``models/lightningdit.py``): ``x_embedder.proj``, ``t_embedder.mlp.{0,2}``,
``y_embedder.embedding_table``, ``pos_embed`` (fixed 2D sin-cos, a parameter without grad),
``blocks.i.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2,adaLN_modulation.1}``,
``final_layer.{linear,adaLN_modulation.1}``; LightningDiT adds ``norm1.weight`` / ``norm2.weight`` /
``final_layer.norm_final.weight`` (RMSNorm), ``attn.{q,k}_norm.weight`` (QK-norm) and
``mlp.{w12,w3}`` (SwiGLU with hidden ``int(2/3 * 4 * width)``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import apply_rope, rope_table_2d


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    input_size: int = 32  # latent (or pixel) side
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    class_dropout_prob: float = 0.1  # > 0 adds the null-class row (id = num_classes)
    num_classes: int = 1000
    learn_sigma: bool = True
    # LightningDiT options (all off = DiT / SiT)
    rmsnorm: bool = False
    swiglu: bool = False
    rope: bool = False
    qk_norm: bool = False

    def __post_init__(self) -> None:
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size {self.input_size} not divisible by patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} not divisible by num_heads {self.num_heads}")

    @property
    def out_channels(self) -> int:
        return self.in_channels * 2 if self.learn_sigma else self.in_channels

    @property
    def grid(self) -> int:
        return self.input_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Embedders
# ----------------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[cos | sin] of t * 10000^(-i/half) (GLIDE / DiT order)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim))


class LabelEmbedder(nn.Module):
    """Class table; label dropout happens in the trainer (seeded), the null class is ``num_classes``."""

    def __init__(self, num_classes: int, hidden: int, dropout_prob: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(y)


class PatchEmbed(nn.Module):
    """timm ``PatchEmbed``: conv with kernel = stride = patch, then [B, N, D] in raster order."""

    def __init__(self, patch: int, in_ch: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(in_ch, hidden, kernel_size=patch, stride=patch, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def sincos_pos_embed_2d(dim: int, grid: int) -> np.ndarray:
    """DiT / MAE ``get_2d_sincos_pos_embed`` (float64): first half from the column index, second
    from the row index (upstream's meshgrid(w, h) order), each [sin | cos]."""

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    g = np.arange(grid, dtype=np.float32)
    mesh = np.stack(np.meshgrid(g, g), axis=0).reshape(2, 1, grid, grid)
    return np.concatenate([one_d(dim // 2, mesh[0]), one_d(dim // 2, mesh[1])], axis=1)


# ----------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _norm(cfg: DiTConfig, dim: int) -> nn.Module:
    return RMSNorm(dim, eps=1e-6) if cfg.rmsnorm else nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class Attention(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        head_dim = cfg.hidden_size // cfg.num_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=True)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(head_dim, eps=1e-6) if cfg.rmsnorm else nn.LayerNorm(head_dim, eps=1e-6)
            self.k_norm = RMSNorm(head_dim, eps=1e-6) if cfg.rmsnorm else nn.LayerNorm(head_dim, eps=1e-6)
        else:
            self.q_norm = self.k_norm = nn.Identity()
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """timm ``Mlp`` with tanh-GELU (DiT)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SwiGLUFFN(nn.Module):
    """DINOv2 / LightningDiT SwiGLU: ``w3(silu(a) * b)`` with ``[a | b] = w12(x)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12, self.w3 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class DiTBlock(nn.Module):
    """adaLN-Zero block: six modulation vectors from the conditioning, gates start at zero."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden_size
        hidden = int(d * cfg.mlp_ratio)
        self.norm1, self.norm2 = _norm(cfg, d), _norm(cfg, d)
        self.attn = Attention(cfg)
        self.mlp = SwiGLUFFN(d, int(2 / 3 * hidden)) if cfg.swiglu else Mlp(d, hidden)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: torch.Tensor | None = None) -> torch.Tensor:
        sh_a, sc_a, g_a, sh_m, sc_m, g_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), sh_a, sc_a), rope)
        return x + g_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), sh_m, sc_m))


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.hidden_size
        self.norm_final = _norm(cfg, d)
        self.linear = nn.Linear(d, cfg.patch_size**2 * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------
class DiT(nn.Module):
    """``forward(x [B,C,H,W], t [B], y [B]) -> [B, out_channels, H, W]`` (eps [+ variance] or velocity).

    ``t`` is whatever the sampler feeds: DDPM timesteps 0..999 (DiT) or flow time in [0, 1]
    (SiT, LightningDiT). No label dropout inside (the trainer drops labels with its generator).
    """

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.x_embedder = PatchEmbed(cfg.patch_size, cfg.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.y_embedder = LabelEmbedder(cfg.num_classes, d, cfg.class_dropout_prob)
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid**2, d), requires_grad=False)
        self.blocks = nn.ModuleList([DiTBlock(cfg) for _ in range(cfg.depth)])
        self.final_layer = FinalLayer(cfg)
        self._rope: dict[torch.device, torch.Tensor] = {}  # built lazily: meta / to_empty safe

    def rope_table(self, device: torch.device) -> torch.Tensor | None:
        """LightningDiT's VisionRotaryEmbeddingFast (EVA-02) as a table: interleaved pairs, base
        10000, the first head_dim/4 pairs rotate by the patch row, the rest by the column."""
        if not self.cfg.rope:
            return None
        if device not in self._rope:
            g, head_dim = self.cfg.grid, self.cfg.hidden_size // self.cfg.num_heads
            rows, cols = torch.arange(g).repeat_interleave(g), torch.arange(g).repeat(g)
            self._rope[device] = rope_table_2d(rows, cols, head_dim).to(device)
        return self._rope[device]

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    def initialize_weights(self, generator: torch.Generator | None = None) -> DiT:
        """DiT's init: xavier-uniform linears, sin-cos pos_embed, N(0, 0.02) label / t tables,
        zero adaLN modulations and output layer (so every block starts as the identity)."""

        def xavier(w: torch.Tensor) -> None:
            fan_out, fan_in = w.shape[0], w[0].numel()
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            with torch.no_grad():
                w.copy_(torch.rand(w.shape, generator=generator) * 2 * bound - bound)

        for m in self.modules():
            if isinstance(m, nn.Linear):
                xavier(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.pos_embed.copy_(
                torch.from_numpy(sincos_pos_embed_2d(self.cfg.hidden_size, self.cfg.grid)).float()[None]
            )
            xavier(self.x_embedder.proj.weight)
            nn.init.zeros_(self.x_embedder.proj.bias)
            self.y_embedder.embedding_table.weight.copy_(
                torch.randn(self.y_embedder.embedding_table.weight.shape, generator=generator) * 0.02
            )
            for i in (0, 2):
                w = self.t_embedder.mlp[i].weight
                w.copy_(torch.randn(w.shape, generator=generator) * 0.02)
            for block in self.blocks:
                nn.init.zeros_(block.adaLN_modulation[-1].weight)
                nn.init.zeros_(block.adaLN_modulation[-1].bias)
            for p in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
                nn.init.zeros_(p.weight)
                nn.init.zeros_(p.bias)
        return self

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        c, p, g = self.cfg.out_channels, self.cfg.patch_size, self.cfg.grid
        x = x.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, g * p, g * p)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        rope = self.rope_table(x.device)
        for block in self.blocks:
            x = block(x, c, rope)
        return self.unpatchify(self.final_layer(x, c))


# DiT's registry: name -> (depth, hidden, heads); patch from the suffix
DIT_SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}


def named_config(name: str, **overrides: Any) -> DiTConfig:
    """``"DiT-XL/2"`` (or ``XL/2``) -> DiTConfig for 256 px SD-VAE latents (32x32x4)."""
    size, _, patch = name.removeprefix("DiT-").partition("/")
    if size not in DIT_SIZES or patch not in ("1", "2", "4", "8"):
        raise ValueError(f"unknown DiT config {name!r} (sizes {', '.join(DIT_SIZES)}; patches 2, 4, 8)")
    depth, hidden, heads = DIT_SIZES[size]
    base = dict(input_size=32, patch_size=int(patch), in_channels=4, hidden_size=hidden, depth=depth, num_heads=heads)
    return DiTConfig(**{**base, **overrides})
