"""Reconstruction quality of a tokenizer: rFID, PSNR, SSIM, codebook usage and entropy.

rFID is the FID of the reconstructions against the statistics of the *same* real images (after the
tokenizer's own preprocessing, i.e. exactly the uint8 images it was given), never against another
split: a val-vs-train floor (~7.6 on ImageNet) would swamp it. PSNR and SSIM are per-image on uint8
(data range 255) and averaged over images; SSIM is scikit-image's ``structural_similarity``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.data.npz import check_images_array
from harness.errors import UserError
from harness.metrics.features import extract_features
from harness.metrics.fid import feature_statistics, frechet_distance
from harness.metrics.inception import InceptionExtractor


def _as_array(images, name: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.cpu().numpy()
    if not isinstance(images, np.ndarray):
        images = np.concatenate([np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b) for b in images])
    return check_images_array(images, name)


def psnr(real: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB (inf for identical images)."""
    diff = real.astype(np.float64) - recon.astype(np.float64)
    mse = (diff ** 2).reshape(len(real), -1).mean(1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(255.0 ** 2 / mse)


def ssim(real: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Per-image SSIM (scikit-image defaults: 7x7 uniform window, RGB as channel axis)."""
    from skimage.metrics import structural_similarity

    win = min(7, real.shape[1], real.shape[2])
    win -= 1 - win % 2  # odd window no larger than the image
    return np.array([structural_similarity(a, b, channel_axis=-1, data_range=255, win_size=win)
                     for a, b in zip(real, recon)])


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
    return {"codebook_usage": float((counts > 0).mean()), "codebook_entropy": entropy,
            "codebook_perplexity": float(2.0 ** entropy)}


def evaluate_reconstruction(real, recon, inception: Any = "fid-helper", codes=None, codebook_size: int | None = None,
                            batch_size: int = 50, device: str = "auto", cache: bool = True) -> dict[str, Any]:
    """``{"rfid", "psnr", "ssim", "codebook_usage", "codebook_entropy", ...}`` for uint8 NHWC real/recon pairs."""
    real_a, recon_a = _as_array(real, "real images"), _as_array(recon, "reconstructions")
    if real_a.shape != recon_a.shape:
        raise UserError(f"real images {list(real_a.shape)} and reconstructions {list(recon_a.shape)} differ in shape")
    if len(real_a) < 2:
        raise UserError(f"need at least 2 image pairs for rFID, got {len(real_a)}")
    extractor = inception if isinstance(inception, InceptionExtractor) else InceptionExtractor(inception, device)
    f_real = extract_features(real_a, extractor, batch_size, cache=cache, name="real images")
    f_recon = extract_features(recon_a, extractor, batch_size, cache=cache, name="reconstructions")
    mu_r, s_r = feature_statistics(f_real.pool, "real features")
    mu_x, s_x = feature_statistics(f_recon.pool, "reconstruction features")
    p, s = psnr(real_a, recon_a), ssim(real_a, recon_a)
    out: dict[str, Any] = {"rfid": frechet_distance(mu_x, s_x, mu_r, s_r), "psnr": float(np.mean(p)),
                           "ssim": float(np.mean(s)), "n": int(len(real_a)), "weights": extractor.weights.describe()}
    if codes is not None:
        if codebook_size is None:
            raise ValueError("codebook_size is required with codes")
        out.update(codebook_stats(codes, codebook_size))
    else:
        out.update(codebook_usage=None, codebook_entropy=None)
    return out
