"""RAR (randomized autoregressive) generator on MaskGIT-VQGAN codes, sampled in raster order.

Facts from bytedance/1d-tokenizer ``modeling/rar.py``, ``configs/training/generator/rar.yaml`` and
``README_RAR.md``:

- sequence ``[cls_token | condition | codes]``; vocabulary ``codebook + 1 + classes + 1``: class c
  -> ``codebook + 1 + c``, the CFG null class -> the last id; the head predicts codes only.
- blocks: pre-LayerNorm (eps 1e-6) attention with qkv bias and LayerNorm QK-norm (no RoPE), GELU
  MLP ``fc1``/``fc2`` (timm ``Mlp``); adaLN modulation ``SiLU -> Linear(d, 6d)`` (shift, scale,
  gate for attention and MLP) driven by ``c_q = emb(condition) + timesteps_embeddings[q]``;
  final ``adaln_before_head`` (LayerNorm without affine, SiLU -> Linear(d, 2d): scale, shift) and
  ``lm_head``.
- position q gets ``pos_embed[q]``; the *target-aware* embedding ``target_aware_pos_embed[q + 1]``
  (the position of the token q predicts) is added for q = 1..seq_len and zero at q = 0 and at
  q = seq_len + 1. Training permutes the order with probability r; at inference the order is
  raster, so the model is a plain causal AR decoder and uses the shared sampler.
- sampling (``RAR.generate``): doubled-batch CFG every step with the power-cosine scale
  ``1 + (g-1)(1 - cos(pi (t/T)^pow))/2``, logits / temperature, full softmax (no top-k / top-p).
  Presets (g / pow / temperature): B 16.0 / 2.75 / 1.0; L 15.5 / 2.5 / 1.02; XL 6.9 / 1.5 / 1.02;
  XXL 8.0 / 1.2 / 1.02.
- ``preprocess_condition`` draws ``torch.rand_like(condition, dtype=float)`` once before sampling
  (label dropout with p = 0); ``presample_draws`` makes that draw from the sampling generator.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.interfaces import ARSampling
from harness.nn.layers.attention import KVCache, cached_attention


@dataclasses.dataclass(frozen=True)
class RARConfig:
    """Defaults are RAR-B on MaskGIT-VQGAN tokens."""

    depth: int = 24
    width: int = 768
    num_heads: int = 16
    mlp_hidden: int = 3072
    codebook_size: int = 1024
    num_classes: int = 1000
    image_seq_len: int = 256
    norm_eps: float = 1e-6
    dropout: float = 0.1
    attn_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f"width {self.width} is not divisible by {self.num_heads} heads")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def vocab_size(self) -> int:
        return self.codebook_size + 1 + self.num_classes + 1

    @property
    def null_class_id(self) -> int:
        return self.vocab_size - 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RAR_SIZES = {"b": (24, 768, 3072), "l": (24, 1024, 4096), "xl": (32, 1280, 5120), "xxl": (40, 1408, 6144)}
# (guidance scale, power, temperature) of README_RAR / the sampling configs
RAR_SAMPLING = {"b": (16.0, 2.75, 1.0), "l": (15.5, 2.5, 1.02), "xl": (6.9, 1.5, 1.02), "xxl": (8.0, 1.2, 1.02)}
RAR_PARAMS = {"b": 261e6, "l": 461e6, "xl": 955e6, "xxl": 1499e6}  # RAR paper Table 1


def rar_config(size: str, **overrides) -> RARConfig:
    depth, width, mlp = RAR_SIZES[size]
    return RARConfig(depth=depth, width=width, mlp_hidden=mlp, **overrides)


def rar_sampling(size: str) -> ARSampling:
    g, power, temperature = RAR_SAMPLING[size]
    return ARSampling(cfg_scale=g, cfg_schedule="power-cosine", cfg_power=power, temperature=temperature)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class RARAttention(nn.Module):
    """qkv (bias) -> LayerNorm QK-norm -> SDPA (causal, or over the static KV cache) -> proj."""

    decode_kernel = "auto"  # harness.nn.layers.attention.set_decode_kernel

    def __init__(self, cfg: RARConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=True)
        self.q_norm = nn.LayerNorm(cfg.head_dim, eps=cfg.norm_eps)
        self.k_norm = nn.LayerNorm(cfg.head_dim, eps=cfg.norm_eps)
        self.proj = nn.Linear(cfg.width, cfg.width)
        self.attn_dropout, self.proj_drop = cfg.attn_dropout, nn.Dropout(cfg.dropout)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout = self.attn_dropout if self.training else 0.0
        if input_pos is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            out = cached_attention(q, k, v, self.kv_cache, input_pos, mask, kv_len, dropout, self.decode_kernel)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class RARBlock(nn.Module):
    def __init__(self, cfg: RARConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.attn = RARAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.width, cfg.mlp_hidden, cfg.dropout)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 6 * cfg.width))

    def forward(self, x, c, input_pos=None, mask=None, kv_len=None):
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), input_pos, mask, kv_len)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    def __init__(self, cfg: RARConfig):
        super().__init__()
        self.norm_final = nn.LayerNorm(cfg.width, eps=cfg.norm_eps, elementwise_affine=False)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 2 * cfg.width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.adaLN_modulation(c).chunk(2, dim=-1)
        return modulate(self.norm_final(x), shift, scale)


class RAR(nn.Module):
    """Raster-order RAR; the model protocol of ``harness.nn.models.ar_generator`` (cond = one class id).

    Sampler positions are shifted by one internally: the learned ``cls_token`` sits at 0.
    """

    def __init__(self, cfg: RARConfig):
        super().__init__()
        self.cfg = cfg
        self.num_classes, self.num_tokens, self.codebook_size = cfg.num_classes, cfg.image_seq_len, cfg.codebook_size
        d, n = cfg.width, cfg.image_seq_len
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(RARBlock(cfg) for _ in range(cfg.depth))
        self.embeddings = nn.Embedding(cfg.vocab_size, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1024, d))
        self.target_aware_pos_embed = nn.Parameter(torch.zeros(1, n + 1024, d))
        self.timesteps_embeddings = nn.Parameter(torch.zeros(1, n + 100, d))
        self.adaln_before_head = FinalLayer(cfg)
        self.lm_head = nn.Linear(d, cfg.codebook_size)
        self._cond: torch.Tensor | None = None  # condition embedding kept by prefill (adaLN input)
        self._mask: torch.Tensor | None = None
        if self.lm_head.weight.device.type != "meta":
            self.reset_parameters()

    @property
    def max_len(self) -> int:
        return 2 + self.cfg.image_seq_len  # cls, condition, codes (the last code is never fed)

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def reset_parameters(self, generator: torch.Generator | None = None) -> RAR:
        """Upstream init: trunc-normal(0.02) weights and embeddings, zero biases, adaLN-zero."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=0.02, generator=generator)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.cls_token)
        for p in (self.pos_embed, self.target_aware_pos_embed, self.timesteps_embeddings):
            nn.init.trunc_normal_(p, std=0.02, generator=generator)
        for mod in [b.adaLN_modulation for b in self.blocks] + [self.adaln_before_head.adaLN_modulation]:
            nn.init.zeros_(mod[-1].weight)
            nn.init.zeros_(mod[-1].bias)
        return self

    # -- position terms ----------------------------------------------------------------------------
    def _position_terms(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Internal positions ``q [L]`` -> (pos + target-aware embedding ``[L, d]``, timestep embedding ``[L, d]``)."""
        n = self.cfg.image_seq_len
        tape = self.target_aware_pos_embed[0, (q + 1).clamp(max=self.target_aware_pos_embed.shape[1] - 1)]
        tape = tape * ((q >= 1) & (q <= n)).to(tape.dtype)[:, None]
        return self.pos_embed[0, q] + tape, self.timesteps_embeddings[0, q]

    def _head(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.adaln_before_head(x, c)).float()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B, L]`` = [condition id | first L-1 codes] -> code logits ``[B, L, codebook]`` (raster order)."""
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.max_len - 1:
            raise ValueError(f"tokens must be [B, L] with 1 <= L <= {self.max_len - 1}, got {tuple(tokens.shape)}")
        b, length = tokens.shape
        emb = self.embeddings(tokens)
        x = torch.cat([self.cls_token.expand(b, -1, -1).to(emb.dtype), emb], dim=1)
        q = torch.arange(length + 1, device=tokens.device)
        pos, ts = self._position_terms(q)
        x = x + pos
        c = emb[:, :1] + ts  # adaLN input per position
        for block in self.blocks:
            x = block(x, c)
        return self._head(x[:, 1:], c[:, 1:])

    # -- the AR generator protocol -------------------------------------------------------------------
    def condition_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        return (labels.long() + self.cfg.codebook_size + 1)[:, None]

    def null_condition_tokens(self, cond: torch.Tensor) -> torch.Tensor:
        return torch.full_like(cond, self.cfg.null_class_id)

    def presample_draws(self, labels: torch.Tensor, generator: torch.Generator) -> None:
        """``preprocess_condition``'s label-dropout draw (p = 0 at sampling, but it consumes the RNG)."""
        torch.rand(labels.shape, generator=generator, device=labels.device)

    def config_dict(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def reset_cache(self, batch: int, dtype: torch.dtype = torch.float32) -> None:
        cfg, device = self.cfg, self.device
        shape = (batch, cfg.num_heads, self.max_len, cfg.head_dim)
        for block in self.blocks:
            cache = block.attn.kv_cache
            if cache is None or cache.shape != shape or cache.k.dtype != dtype or cache.k.device != device:
                block.attn.kv_cache = KVCache(batch, cfg.num_heads, self.max_len, cfg.head_dim, dtype, device)
        if self._mask is None or self._mask.device != device:
            self._mask = torch.tril(torch.ones(self.max_len, self.max_len, dtype=torch.bool, device=device))

    def free_cache(self) -> None:
        for block in self.blocks:
            block.attn.kv_cache = None
        self._mask, self._cond = None, None

    def _cached(self, x: torch.Tensor, q: torch.Tensor, kv_len: int) -> torch.Tensor:
        pos, ts = self._position_terms(q)
        x = x + pos
        c = self._cond[:, None] + ts
        mask = self._mask[q, :kv_len]
        for block in self.blocks:
            x = block(x, c, q, mask, kv_len)
        return self._head(x[:, -1], c[:, -1])

    def prefill(self, cond: torch.Tensor) -> torch.Tensor:
        """Condition ids ``[B, 1]``: run cls + condition (internal positions 0, 1) -> logits of code 0."""
        if cond.shape[1] != 1:
            raise ValueError(f"RAR takes one condition token, got {cond.shape[1]}")
        emb = self.embeddings(cond)
        self._cond = emb[:, 0]
        x = torch.cat([self.cls_token.expand(cond.shape[0], -1, -1).to(emb.dtype), emb], dim=1)
        return self._cached(x, torch.arange(2, device=cond.device), 2)

    def decode_step(self, token: torch.Tensor, pos: torch.Tensor, kv_len: int | None = None) -> torch.Tensor:
        """Code ``[B]`` at sampler position ``pos`` (internal ``pos + 1``); attends over ``kv_len + 1`` slots."""
        kv = self.max_len if kv_len is None else min(kv_len + 1, self.max_len)
        return self._cached(self.embeddings(token[:, None]), pos + 1, kv)


def build(cfg: RARConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> RAR:
    with torch.device("meta"):
        model = RAR(cfg)
    if torch.device(device).type != "meta":
        model = model.to_empty(device=device).reset_parameters(generator)
    return model


def load(path, cfg: RARConfig, device: torch.device | str = "cpu") -> RAR:
    from harness.nn.checkpoints.checkpoint import load_state_dict, load_strict

    return load_strict(
        lambda: build(cfg, "meta"), load_state_dict(path), path, f"RAR ({cfg.depth} layers, width {cfg.width})", device
    )
