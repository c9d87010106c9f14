"""Inception-v3 feature extraction exactly as torch-fidelity's ``inception-v3-compat`` does it.

The network and its TF1-exact bilinear resize to 299 come from torch-fidelity; we add only:
- an sFID hook on ``Mixed_6d.branch1x1`` (TF ``mixed_6/conv``), channels ``[:7]`` flattened in NHWC
  order (17*17*7 = 2023 values), the layout of ADM's stored ``mu_s/sigma_s``;
- channels_last memory format (same features within ~6e-6, ~1.5x faster on CPU);
- weights loaded with ``weights_only=True``.
Images go in at their native size; the extractor resizes once (no second resize anywhere).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from harness.core.devices import resolve_device, tf32
from harness.metrics.weights import WeightsInfo, resolve_weights

# The resize used: torch-fidelity's own function (tests check identity), recorded by this name.
tf1_resize = interpolate_bilinear_2d_like_tensorflow1x
RESIZE_ID = "tf1-bilinear-299"
EXTRACTOR_ID = "torch-fidelity-0.4.0/inception-v3-compat"
SFID_LAYER = "Mixed_6d.branch1x1[:7]/nhwc"


def describe_pipeline(weights: WeightsInfo) -> dict:
    """What produced a feature: extractor, resize, sFID layer and weights (compared across files)."""
    return {"extractor": EXTRACTOR_ID, "resize": RESIZE_ID, "sfid_layer": SFID_LAYER, "weights": weights.describe()}


@contextlib.contextmanager
def _torch_load_weights_only():
    """torch-fidelity calls torch.load(weights_only=False); route it to a safe, CPU-mapped load."""
    original = torch.load

    def safe_load(f, *args, **kwargs):
        return original(f, map_location="cpu", weights_only=True)

    torch.load = safe_load
    try:
        yield
    finally:
        torch.load = original


class InceptionExtractor:
    """uint8 NHWC batches -> {"pool": [B,2048], "logits": [B,1008] (if real), "spatial": [B,2023]} float32."""

    def __init__(
        self, weights: WeightsInfo | str = "fid-helper", device: str | torch.device = "auto", channels_last: bool = True
    ):
        self.weights = weights if isinstance(weights, WeightsInfo) else resolve_weights(weights)
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        features = ["2048", "logits_unbiased"] if self.weights.has_logits else ["2048"]
        with _torch_load_weights_only():
            net = FeatureExtractorInceptionV3(
                "inception-v3-compat", features, feature_extractor_weights_path=str(self.weights.path)
            )
        net = net.to(self.device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net.eval()
        self.channels_last = channels_last
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._grab_spatial)

    def _grab_spatial(self, module: Any, inputs: Any, output: torch.Tensor) -> None:
        # [B,192,17,17] post-ReLU -> first 7 channels -> NHWC -> [B, 17*17*7]
        self._spatial = output[:, :7].permute(0, 2, 3, 1).reshape(output.shape[0], -1).float()

    @property
    def layers(self) -> tuple[str, ...]:
        return ("pool", "logits", "spatial") if self.weights.has_logits else ("pool", "spatial")

    def describe(self) -> dict:
        return {**describe_pipeline(self.weights), "channels_last": self.channels_last}

    @torch.no_grad()
    def __call__(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        if isinstance(images, np.ndarray) and not images.flags.writeable:
            images = np.array(images)  # batches read from npz are read-only buffers; torch wants writable memory
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"expected uint8 images [B,H,W,3], got {x.dtype} {list(x.shape)}")
        x = x.to(self.device).permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last already
        with tf32(False):  # features must not depend on the GPU generation
            outs = self.net(x)
        result = {"pool": outs[0].float().cpu().numpy(), "spatial": self._spatial.cpu().numpy()}
        if self.weights.has_logits:
            result["logits"] = outs[1].float().cpu().numpy()
        self._spatial = None
        return result
