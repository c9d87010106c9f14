"""RMSNorm (LlamaGen / AliTok flavour): normalise in fp32, cast back, then scale.

Parameter name ``weight`` so official state dicts (``blocks.i.norm1.weight``) load as they are.
"""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 statistics even under bf16 autocast; the cast back happens before the scale,
        # in the order LlamaGen uses, so bf16 runs round the same way as the upstream code.
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
