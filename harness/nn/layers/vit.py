"""Pre-LN ViT blocks with the parameter names the TiTok / AliTok checkpoints use.

One block is ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``; the attention has one fused
``in_proj`` Linear (rows stacked ``[q | k | v]``, each head-major) and an ``out_proj`` Linear,
the MLP is ``c_fc`` -> GELU -> ``c_proj``. q, k and v are cast to fp32 before SDPA (as upstream),
so an autocast run attends in full precision.

Attention masks: ``None`` (full), ``"causal"`` (lower triangle, diagonal included) or a boolean
``[N, N]`` tensor where True means "query i may attend to key j".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

AttnMask = None | str | torch.Tensor


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj = nn.Linear(width, 3 * width)
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: AttnMask = None) -> torch.Tensor:
        b, n, w = x.shape
        qkv = self.in_proj(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = (t.float() for t in qkv.unbind(0))
        if isinstance(mask, str):
            if mask != "causal":
                raise ValueError(f"attention mask {mask!r} unknown (None, 'causal' or a bool tensor)")
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.to(x.dtype).transpose(1, 2).reshape(b, n, w)
        return self.out_proj(out)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: AttnMask = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.ModuleList):
    """``layers`` blocks; a ModuleList so the keys read ``transformer.<i>.ln_1.weight`` etc."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__([Block(width, heads, mlp_ratio) for _ in range(layers)])

    def forward(self, x: torch.Tensor, mask: AttnMask = None) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, mask)
        return x


def init_vit_weights(module: nn.Module, generator: torch.Generator | None = None, std: float = 0.02) -> None:
    """TiTok/AliTok init: trunc-normal(std) for Linear/Conv/Embedding weights, zero biases,
    LayerNorm (1, 0). Free ``nn.Parameter``s are left to their owner (they use width**-0.5 * randn)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            if m.weight.device.type != "meta":
                nn.init.trunc_normal_(m.weight, std=std, generator=generator)  # bounds +-2 absolute, as torch/upstream
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
