"""The LlamaGen-style transformer block AliTok's AR generator uses (and LlamaGen itself).

pre-RMSNorm -> causal attention (qkv bias, QK-norm before RoPE, proj bias) -> residual;
pre-RMSNorm -> SwiGLU FFN (w1, w3 gate/up, w2 down; no bias) -> residual. Dropout on both
residual branches and in attention, as configured.
Submodule names (``norm1, attn, norm2, mlp.w1/w2/w3``) are the AliTok checkpoint's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.nn.kernels.packed_linear import add_linear, gated_up
from harness.nn.layers.attention import CausalSelfAttention
from harness.nn.layers.norms import RMSNorm


def swiglu_hidden(dim: int, multiple_of: int = 256) -> int:
    """``round_up(int(8*dim/3), multiple_of)``: 768 -> 2048, 1024 -> 2816, 1280 -> 3584."""
    hidden = int(8 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``w2(silu(w1 x) * w3 x)``, plus ``residual`` when given (fused into the w2 GEMM where it runs packed
        and dropout is off; ``harness.nn.kernels.packed_linear``)."""
        gate, up = gated_up(self.w1, self.w3, x)
        h = F.silu(gate) * up
        if residual is None:
            return self.dropout(self.w2(h))
        if self.training and self.dropout.p:
            return residual + self.dropout(self.w2(h))
        return add_linear(residual, self.w2, h)


class LlamaBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        ffn_hidden: int | None = None,
        norm_eps: float = 1e-5,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = True,
        attn_dropout: float = 0.0,
        resid_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
    ):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps=norm_eps)
        self.attn = CausalSelfAttention(
            dim,
            num_heads,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            qk_norm=qk_norm,
            norm_eps=norm_eps,
            attn_dropout=attn_dropout,
            resid_dropout=resid_dropout,
        )
        self.norm2 = RMSNorm(dim, eps=norm_eps)
        self.mlp = SwiGLU(dim, ffn_hidden or swiglu_hidden(dim), dropout=ffn_dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: torch.Tensor,
        input_pos: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        kv_len: int | None = None,
    ) -> torch.Tensor:
        x = self.attn(self.norm1(x), rope, input_pos, mask, kv_len, residual=x)  # x + attention
        return self.mlp(self.norm2(x), residual=x)
