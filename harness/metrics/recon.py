"""Reconstruction quality of a tokenizer: rFID, PSNR, SSIM, codebook usage and entropy.

rFID is the FID of the reconstructions against the statistics of the *same* real images (after the
tokenizer's own preprocessing, i.e. exactly the uint8 images it was given), never against another
split: a val-vs-train floor (~7.6 on ImageNet) would swamp it. PSNR and SSIM are per-image on uint8
(data range 255) and averaged over images; SSIM is scikit-image's ``structural_similarity``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.errors import InputFileError, UserError
from harness.data.npz import check_images_array, npz_array_info
from harness.metrics.features import extract_features, iter_batches
from harness.metrics.fid import frechet_distance
from harness.metrics.inception import InceptionExtractor
from harness.metrics.provenance import PAPER_N


def _as_array(images, name: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if not isinstance(images, np.ndarray):
        images = np.concatenate([np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b) for b in images])
    return check_images_array(images, name)


def psnr(real: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB (inf for identical images)."""
    diff = real.astype(np.float64) - recon.astype(np.float64)
    mse = (diff**2).reshape(len(real), -1).mean(1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0**2 / mse)


def ssim(real: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-image SSIM (scikit-image defaults: 7x7 uniform window, RGB as channel axis)."""
    from skimage.metrics import structural_similarity

    win = min(7, real.shape[1], real.shape[2])
    win -= 1 - win % 2  # odd window no larger than the image
    return np.array(
        [structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=win) for a, b in zip(real, recon)]
    )


def codebook_stats(codes: torch.Tensor | np.ndarray, codebook_size: int) -> dict[str, float]:
    """Share of codebook entries used, and the entropy (bits) / perplexity of the code histogram."""
    c = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes).reshape(-1)
    if c.size == 0:
        raise ValueError("codes are empty")
    if c.min() < 0 or c.max() >= codebook_size:
        raise ValueError(f"codes must lie in [0, {codebook_size}), got range [{c.min()}, {c.max()}]")
    counts = np.bincount(c.astype(np.int64), minlength=codebook_size)
    p = counts[counts > 0] / c.size
    entropy = float(-(p * np.log2(p)).sum())
    return {
        "codebook_usage": float((counts > 0).mean()),
        "codebook_entropy": entropy,
        "codebook_perplexity": float(2.0**entropy),
    }


def _source(images, name: str):
    """An npz path as it is (streamed in batches), anything else as one checked uint8 NHWC array."""
    if isinstance(images, (str, Path)):
        return Path(images)
    return _as_array(images, name)


def _shape(source) -> tuple[int, ...]:
    if isinstance(source, Path):
        shape, dtype = npz_array_info(source, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise InputFileError(source, f"arr_0 must be uint8 [N,H,W,3] images, got {dtype} {list(shape)}")
        return tuple(shape)
    return source.shape


def evaluate_reconstruction(
    real,
    recon,
    inception: Any = "fid-helper",
    codes=None,
    codebook_size: int | None = None,
    batch_size: int = 50,
    device: str = "auto",
    cache: bool = True,
) -> dict[str, Any]:
    """``{"rfid", "psnr", "ssim", "codebook_usage", "codebook_entropy", ...}`` for uint8 NHWC real/recon pairs.

    ``real`` / ``recon``: arrays (or tensors, or lists of batches), or ADM npz paths, which are streamed in
    batches (50k ImageNet images never sit in memory at once) and whose features the cache keeps."""
    real_s, recon_s = _source(real, "real images"), _source(recon, "reconstructions")
    if _shape(real_s) != _shape(recon_s):
        raise UserError(
            f"real images {list(_shape(real_s))} and reconstructions {list(_shape(recon_s))} differ in shape"
        )
    n = _shape(real_s)[0]
    if n < 2:
        raise UserError(f"need at least 2 image pairs for rFID, got {n}")
    extractor = inception if isinstance(inception, InceptionExtractor) else InceptionExtractor(inception, device)
    f_real = extract_features(real_s, extractor, batch_size, cache=cache, name="real images")
    f_recon = extract_features(recon_s, extractor, batch_size, cache=cache, name="reconstructions")
    # the float64 statistics streamed during extraction, as FID's entry in the metric table reads them
    (mu_r, s_r), (mu_x, s_x) = f_real.statistics("pool"), f_recon.statistics("pool")
    p, s = [], []
    for a, b in zip(iter_batches(real_s, batch_size), iter_batches(recon_s, batch_size)):
        p.append(psnr(a, b))
        s.append(ssim(a, b))
    out: dict[str, Any] = {
        "rfid": frechet_distance(mu_x, s_x, mu_r, s_r),
        "psnr": float(np.mean(np.concatenate(p))),
        "ssim": float(np.mean(np.concatenate(s))),
        "n": int(n),
        "weights": extractor.weights.describe(),
    }
    if codes is not None:
        if codebook_size is None:
            raise ValueError("codebook_size is required with codes")
        out.update(codebook_stats(codes, codebook_size))
    else:
        out.update(codebook_usage=None, codebook_entropy=None)
    return out


def paper_comparable(
    weights: dict[str, Any], n: int, source_description: str, image_size: tuple[int, int]
) -> tuple[bool, list[str]]:
    """``(flag, reasons it is not)`` of an rFID: the papers' protocol is the 50k ImageNet val images at
    256 px with the official Inception weights; only that combination is comparable."""
    reasons = []
    if not weights.get("official"):
        reasons.append(f"Inception weights are {weights.get('kind')}, not the official file")
    if n != PAPER_N:
        reasons.append(f"{n} reconstructed images, not {PAPER_N}")
    if not source_description.startswith("imagenet"):
        reasons.append(f"reconstructs {source_description or 'an unrecorded source'}, not ImageNet val")
    if tuple(image_size) != (256, 256):
        reasons.append(f"{image_size[0]}x{image_size[1]} images, not 256x256")
    return not reasons, reasons
