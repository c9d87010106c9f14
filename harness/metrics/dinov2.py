"""FD-DINOv2 features: DINOv2 ViT-L/14 built with timm, fed the way dgm-eval (Stein et al. 2023) feeds it.

- Network: ``timm`` ``vit_large_patch14_dinov2`` at 224 px, no head: the output is the CLS token after
  the final LayerNorm (torch.hub DINOv2's ``forward`` output, dgm-eval's representation), 1024-d.
- Preprocessing (dgm-eval ``DINOv2Encoder.transform``): each uint8 RGB image through PIL bicubic to
  224x224 (``torchvision Resize((224,224), BICUBIC)`` on a PIL image is exactly this), ``/255``, then
  ImageNet mean/std.
- Position embeddings: checkpoints hold them for 518 px (37x37 patches). torch.hub DINOv2 interpolates
  them on every forward (bicubic, ``scale_factor=(16+0.1)/37``, no antialias); we do the same once at
  load time, so the 224-px network equals the hub model at 224 px.
- Weights: a file the user passes (the official ``dinov2_vitl14_pretrain.pth`` or timm's
  ``vit_large_patch14_dinov2.lvd142m`` safetensors; never downloaded) or ``random:SEED`` for tests
  (timm's init with LayerScale set to 1: timm's 1e-5 would make every CLS token the same).
``identity`` names architecture, preprocessing, output and weights sha256; reference statistics record
it and ``check_same_extractor`` refuses statistics made by another one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.errors import UserError

ARCH = "vit_large_patch14_dinov2"
INPUT_SIZE = 224
PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING_ID = "dgm-eval:pil-bicubic-224/255/imagenet-mean-std"
OUTPUT_ID = "cls-token-after-final-norm"
POS_EMBED_ID = "hub-bicubic-offset0.1-noaa"
HUB_INTERPOLATE_OFFSET = 0.1
LAYER = "dinov2"


class DinoWeightsError(UserError, ValueError):
    """A DINOv2 weights spec or file that cannot be used."""


def build_model(arch: str = ARCH, overrides: Mapping[str, Any] | None = None) -> torch.nn.Module:
    """The timm network at 224 px without a head (``overrides``, e.g. ``{"depth": 2}``, only for tests)."""
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=0, img_size=INPUT_SIZE, **dict(overrides or {}))


def state_dict_sha256(sd: Mapping[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, dtypes, shapes, bytes), for weights that live only in memory."""
    h = hashlib.sha256()
    for k in sorted(sd):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{list(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def random_state_dict(
    seed: int, arch: str = ARCH, overrides: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, overrides)
    sd = model.state_dict()
    for k in sd:
        if k.endswith((".ls1.gamma", ".ls2.gamma")):
            sd[k] = torch.ones_like(sd[k])  # make the blocks matter (see module docstring)
    return sd


def resample_pos_embed_like_hub(pos_embed: torch.Tensor, grid: int, num_prefix: int = 1) -> torch.Tensor:
    """torch.hub DINOv2's ``interpolate_pos_encoding`` for a square ``grid``, applied to a stored table."""
    prefix, patches = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:].float()
    m = math.isqrt(patches.shape[1])
    if m * m != patches.shape[1]:
        raise ValueError(f"position table of {patches.shape[1]} patches is not square")
    if m == grid:
        return pos_embed
    scale = (grid + HUB_INTERPOLATE_OFFSET) / m
    dim = patches.shape[-1]
    out = torch.nn.functional.interpolate(
        patches.reshape(1, m, m, dim).permute(0, 3, 1, 2), mode="bicubic", antialias=False, scale_factor=(scale, scale)
    )
    if tuple(out.shape[-2:]) != (grid, grid):
        raise ValueError(f"resampled position grid is {tuple(out.shape[-2:])}, expected {(grid, grid)}")
    out = out.permute(0, 2, 3, 1).reshape(1, grid * grid, dim).to(pos_embed.dtype)
    return torch.cat([prefix, out], dim=1)


def load_weights_file(path: str | Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A hub-format or timm-format DINOv2 checkpoint, mapped onto ``model`` (224 px) and checked strictly."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    from harness.nn.checkpoints.checkpoint import check_state_dict, load_state_dict

    sd = load_state_dict(path)
    if "pos_embed" in sd and sd["pos_embed"].shape[1] != model.pos_embed.shape[1]:
        sd["pos_embed"] = resample_pos_embed_like_hub(sd["pos_embed"], INPUT_SIZE // PATCH)
    sd = checkpoint_filter_fn(sd, model)  # drops mask_token, renames SwiGLU (giant) weights
    check_state_dict(model, sd, path, f"DINOv2 {type(model).__name__}")
    return sd


class DinoV2Extractor:
    """uint8 NHWC batches -> ``{"dinov2": [B, D] float32}``. ``weights``: a checkpoint path or ``random:SEED``."""

    def __init__(
        self,
        weights: str | Path,
        device: str | torch.device = "cpu",
        arch: str = ARCH,
        overrides: Mapping[str, Any] | None = None,
    ):
        from harness.core.devices import resolve_device

        self.arch, self.overrides = arch, dict(overrides or {})
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        with torch.device("meta"):
            model = build_model(arch, self.overrides)
        spec = str(weights)
        if spec.startswith("random:"):
            try:
                seed = int(spec.split(":", 1)[1])
            except ValueError:
                raise DinoWeightsError(f"--dinov2 {spec!r}: expected random:SEED with an integer seed") from None
            sd = random_state_dict(seed, arch, self.overrides)
            self.weights = {"spec": spec, "kind": "random", "sha256": state_dict_sha256(sd)}
        else:
            from harness.core.io import sha256_file

            path = Path(spec)
            if not path.is_file():
                raise DinoWeightsError(f"{path}: DINOv2 weights file not found (pass the downloaded checkpoint)")
            sd = load_weights_file(path, model)
            self.weights = {"spec": spec, "kind": "file", "sha256": sha256_file(path)}
        model = model.to_empty(device=self.device)
        model.load_state_dict(sd, strict=True)
        self.model = model.eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @property
    def dim(self) -> int:
        return int(self.model.num_features)

    @property
    def identity(self) -> str:
        arch = self.arch + (
            "" if not self.overrides else "(" + ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items())) + ")"
        )
        return f"{arch}|{PREPROCESSING_ID}|{POS_EMBED_ID}|{OUTPUT_ID}|sha256:{self.weights['sha256']}"

    def describe(self) -> dict:
        import timm

        return {
            "extractor": f"timm-{timm.__version__}/{self.arch}",
            "arch": self.arch,
            "overrides": self.overrides,
            "preprocessing": PREPROCESSING_ID,
            "pos_embed": POS_EMBED_ID,
            "output": OUTPUT_ID,
            "weights": dict(self.weights),
            "identity": self.identity,
        }

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """dgm-eval's transform: PIL bicubic to 224x224 per image (uint8 out), /255, ImageNet normalisation."""
        from PIL import Image

        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images [B,H,W,3], got {images.dtype} {list(images.shape)}")
        resized = np.stack(
            [np.asarray(Image.fromarray(im).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC)) for im in images]
        )
        x = torch.from_numpy(resized).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return (x - self._mean) / self._std

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from harness.core.devices import tf32

        x = self.preprocess(images)
        with tf32(False):  # features must not depend on the GPU generation
            out = self.model(x)
        return {LAYER: out.float().cpu().numpy()}


def check_same_extractor(recorded: str | None, current: str, where: str | Path) -> None:
    """Refuse DINOv2 reference statistics made by another architecture, preprocessing or weights."""
    from harness.metrics.refstats import ReferenceMismatch

    if recorded != current:
        raise ReferenceMismatch(
            f"{where}: reference DINOv2 statistics were made by {recorded!r}, the samples by "
            f"{current!r}; rebuild the reference with the same --dinov2 weights"
        )


def fd_dinov2(sample_features: np.ndarray, ref_mu: np.ndarray, ref_sigma: np.ndarray, method: str = "eig") -> float:
    """FD-DINOv2: the Fréchet distance (float64, harness.metrics.fid) between sample features and reference stats."""
    from harness.metrics.fid import feature_statistics, frechet_distance

    mu, sigma = feature_statistics(sample_features, "sample DINOv2 features")
    return frechet_distance(mu, sigma, ref_mu, ref_sigma, method=method)


def reference_entries(features: np.ndarray, extractor: DinoV2Extractor) -> tuple[dict[str, np.ndarray], dict]:
    """What a reference file stores for FD-DINOv2: float64 ``mu_dinov2``/``sigma_dinov2`` for the npz and
    ``{"dinov2": describe(), "dinov2_n": N}`` for its metadata sidecar (checked by ``check_reference_meta``)."""
    from harness.metrics.fid import feature_statistics

    mu, sigma = feature_statistics(features, "reference DINOv2 features")
    return {"mu_dinov2": mu, "sigma_dinov2": sigma}, {"dinov2": extractor.describe(), "dinov2_n": int(len(features))}


def check_reference_meta(metadata: Mapping[str, Any] | None, extractor: DinoV2Extractor, where: str | Path) -> None:
    """Refuse a reference without DINOv2 provenance or with another extractor's (see ``check_same_extractor``)."""
    from harness.metrics.refstats import ReferenceMismatch

    recorded = ((metadata or {}).get("dinov2") or {}).get("identity")
    if recorded is None:
        raise ReferenceMismatch(
            f"{where}: the reference records no DINOv2 extractor; FD-DINOv2 needs statistics "
            "built with --dinov2 (rebuild the reference)"
        )
    check_same_extractor(recorded, extractor.identity, where)


class DinoV2Features:
    """The DINOv2 extractor as ``harness.metrics.features`` and the metric table use one (``EXTRACTORS["dinov2"]``):
    its 1024-d output is the ``pool`` layer (streamed float64 moments, kept rows), and ``weights.sha256``
    (which keys the feature cache) is the hash of the extractor's identity, so another architecture,
    preprocessing or weights never reads these features."""

    def __init__(self, extractor: DinoV2Extractor):
        from harness.metrics.weights import WeightsInfo

        self.extractor = extractor
        self.device = extractor.device
        digest = hashlib.sha256(extractor.identity.encode()).hexdigest()
        self.weights = WeightsInfo(
            extractor.weights["spec"], "dinov2-" + extractor.weights["kind"], Path(""), digest, has_logits=False
        )

    @property
    def identity(self) -> str:
        return self.extractor.identity

    def describe(self) -> dict:
        return self.extractor.describe()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {"pool": self.extractor(images)[LAYER]}


def feature_extractor(
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    arch: str = ARCH,
    overrides: Mapping[str, Any] | None = None,
) -> DinoV2Features:
    """``EXTRACTORS["dinov2"]``'s factory. ``weights``: the ``--dinov2`` value (a checkpoint path or random:SEED)."""
    if weights is None:
        raise DinoWeightsError(
            "FD-DINOv2 needs DINOv2 weights: pass --dinov2 PATH (dinov2_vitl14_pretrain.pth or "
            "timm's vit_large_patch14_dinov2.lvd142m) or --dinov2 random:SEED"
        )
    return DinoV2Features(DinoV2Extractor(weights, device, arch, overrides))
