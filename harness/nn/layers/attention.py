"""Causal self-attention with RoPE, optional QK-norm, and a static preallocated KV cache.

The cache (gpt-fast / LlamaGen style) is allocated once as ``[B, heads, max_len, head_dim]``;
each call writes its keys/values at their positions with ``index_copy_`` and attends over a
bounded view of the first ``kv_len`` slots (the caller rounds the filled length up to a bucket)
under a boolean mask that hides positions not yet written. No per-step concatenation, no
re-allocation, and a few fixed shapes (so ``torch.compile`` / CUDA graphs can capture a decode
step) without paying attention over the empty tail of the cache. An eager single-query CPU step
writes and attends in one C kernel instead (``harness.nn.kernels.decode_attention``).

Packed ``qkv`` output is ``[q | k | v]``, each head-major (``[d] = [heads, head_dim]``), the
layout of the AliTok / LlamaGen checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.nn.kernels import decode_attention
from harness.nn.kernels.packed_linear import add_linear
from harness.nn.layers.norms import RMSNorm
from harness.nn.layers.rope import apply_rope


class KVCache(nn.Module):
    """Keys and values for ``max_len`` positions; non-persistent (never in a state dict)."""

    def __init__(
        self,
        batch: int,
        heads: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        shape = (batch, heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.k.shape)

    def update(self, pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v [B, H, L, hd]`` at sequence positions ``pos [L]``; return the full buffers."""
        # contiguous sources: index_copy_ from the strided qkv view is ~25x slower in bf16 on CPU
        self.k.index_copy_(2, pos, k.to(self.k.dtype).contiguous())
        self.v.index_copy_(2, pos, v.to(self.v.dtype).contiguous())
        return self.k, self.v


def set_decode_kernel(model: nn.Module, kernel: str) -> None:
    """Every KV-cached attention of ``model`` (each module with a ``decode_kernel`` attribute) takes its
    one-query CPU steps through ``kernel``: ``"auto"`` the C kernel where it was measured faster here,
    ``"c"`` wherever it applies, ``"sdpa"`` never (``harness.nn.kernels.decode_attention``)."""
    decode_attention.check_kernel(kernel)
    for m in model.modules():
        if hasattr(m, "decode_kernel"):
            m.decode_kernel = kernel


def cached_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cache: KVCache | None,
    input_pos: torch.Tensor,
    mask: torch.Tensor | None,
    kv_len: int | None,
    dropout: float = 0.0,
    kernel: str = "auto",
) -> torch.Tensor:
    """Write ``k, v [B, H, L, hd]`` at ``input_pos`` and attend ``q`` over the cache -> ``[B, H, L, hd]``.

    A single-query CPU step goes through the C decode kernel (``harness.nn.kernels.decode_attention``)
    where ``kernel`` (the caller's setting) lets it; the kernel attends over slots ``0..pos``: the causal
    row, what every caller's mask is. Otherwise SDPA over the first ``kv_len`` slots under ``mask [L, kv_len]``.
    """
    if cache is None:
        raise RuntimeError("cached attention called before reset_cache()")
    if dropout == 0.0 and decode_attention.applies(kernel, q, k, cache.k):
        return decode_attention.attend(q, k, v, cache.k, cache.v, int(input_pos[0]))
    k, v = cache.update(input_pos, k, v)
    if kv_len is not None:
        k, v = k[:, :, :kv_len], v[:, :, :kv_len]
    return F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, dropout_p=dropout)


class CausalSelfAttention(nn.Module):
    """Names: ``qkv`` (bias optional), ``q_norm`` / ``k_norm`` (RMSNorm over head_dim), ``proj``.
    ``decode_kernel``: this module's decode-attention setting (``set_decode_kernel``)."""

    decode_kernel = "auto"

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = True,
        norm_eps: float = 1e-5,
        attn_dropout: float = 0.0,
        resid_dropout: float = 0.0,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        if qk_norm:
            self.q_norm = RMSNorm(self.head_dim, eps=norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.attn_dropout = attn_dropout
        self.resid_dropout = nn.Dropout(resid_dropout)
        self.kv_cache: KVCache | None = None

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kv_len: int | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x [B, L, d]``; ``rope [L, hd/2, 2]`` for these positions. ``residual``: added to the output
        (inside the ``proj`` GEMM where it runs packed and dropout is off; ``harness.nn.kernels.packed_linear``).

        Without ``input_pos``: plain causal attention over ``x`` (training, full recompute).
        With ``input_pos [L]`` and a cache: write into the cache, attend over its first ``kv_len``
        slots (default: all) under ``mask [L, kv_len]``.
        """
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).unbind(2)  # [B, L, H, hd]
        if input_pos is not None and self._fused_decode(q, k):
            out = self._attend_fused(q, k, v, rope, int(input_pos[0]))
        else:
            out = self._attend(q, k, v, rope, input_pos, mask, kv_len)
        out = out.transpose(1, 2).reshape(b, n, self.dim)
        if residual is None:
            return self.resid_dropout(self.proj(out))
        if self.training and self.resid_dropout.p:
            return residual + self.resid_dropout(self.proj(out))
        return add_linear(residual, self.proj, out)

    def _attend(self, q, k, v, rope, input_pos, mask, kv_len) -> torch.Tensor:
        if self.q_norm is not None:  # QK-norm comes before RoPE (AliTok)
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, hd]
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        dropout = self.attn_dropout if self.training else 0.0
        if input_pos is not None:
            return cached_attention(q, k, v, self.kv_cache, input_pos, mask, kv_len, dropout, self.decode_kernel)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)

    def _attend_fused(self, q, k, v, rope, pos: int) -> torch.Tensor:
        """QK-norm, RoPE, cache write and attention in one kernel, on views of the qkv output."""
        norm = self.q_norm is not None
        return decode_attention.attend(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            self.kv_cache.k,
            self.kv_cache.v,
            pos,
            rope=rope,
            eps=self.q_norm.eps if norm else 0.0,
            q_norm=self.q_norm.weight if norm else None,
            k_norm=self.k_norm.weight if norm else None,
        )

    def _fused_decode(self, q: torch.Tensor, k: torch.Tensor) -> bool:
        norm_ok = self.q_norm is None or (self.q_norm.weight.dtype == q.dtype and self.q_norm.eps == self.k_norm.eps)
        return (
            self.kv_cache is not None
            and not (self.training and self.attn_dropout)
            and norm_ok
            and decode_attention.applies(self.decode_kernel, q.transpose(1, 2), k, self.kv_cache.k)
        )
