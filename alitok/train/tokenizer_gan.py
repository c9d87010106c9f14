"""Optional hinge-GAN term for tokenizer training (upstream: NLayerDiscriminator, hinge loss).

A small patch discriminator in the upstream style: 3x3 "same" convs, blur (1,3,3,1) downsampling,
GroupNorm, LeakyReLU 0.1, adaptive max-pool, a logit conv. Channels default to 32 (upstream 128)
for CPU. Generator term ``-w_g * mean D(x_hat)``; discriminator ``w_d * hinge``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BlurDown(nn.Module):
    """Depthwise (1,3,3,1) x (1,3,3,1) / 64 blur, stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = (k[:, None] * k[None, :]) / 64.0
        self.register_buffer("kernel", k.expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 2, 1, 2), mode="reflect"), self.kernel, stride=2, groups=x.shape[1])


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int = 32, stages: tuple[int, ...] = (1, 2, 4), pool: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.1)]
        c = channels
        for mult in stages:
            out = channels * mult
            layers += [
                nn.Conv2d(c, out, 3, padding=1),
                BlurDown(out),
                nn.GroupNorm(min(32, out), out),
                nn.LeakyReLU(0.1),
            ]
            c = out
        layers += [nn.AdaptiveMaxPool2d(pool), nn.Conv2d(c, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] -> logit map; inputs are mapped to [-1,1] first."""
        return self.net(x * 2.0 - 1.0)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
