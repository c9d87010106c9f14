"""One reconstruction run: real images -> ``decode(encode(x))`` -> rFID / PSNR / SSIM / codebook usage,
written as ``reconstructions.npz``, ``originals.npz`` (the real images a report's grid shows beside them),
``recon_grid.png`` and ``recon_record.json`` under ``out``.

Used by the ``recon`` verb and by suite entries with ``task: recon``. The rFID protocol of the
papers is the 50k ImageNet val images at 256 px with the official Inception weights; only that
combination is marked ``paper_comparable``. Real and reconstructed images are held in memory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from harness.core.errors import UserError


def _grid(real: np.ndarray, recon: np.ndarray, path: Path, n: int = 16) -> None:
    from PIL import Image

    from harness.core.io import atomic_path

    row = lambda a: np.concatenate(list(a[:n]), axis=1)  # noqa: E731
    canvas = np.concatenate([row(real), row(recon)], axis=0)
    scale = max(1, 256 // canvas.shape[0])
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    with atomic_path(path) as f:
        img.save(f, format="PNG")


def run_recon(
    source: str,
    tokenizer: str,
    out: str | Path,
    *,
    checkpoint: str | None = None,
    options: dict[str, Any] | None = None,
    inception: str = "fid-helper",
    batch_size: int = 64,
    device: str = "auto",
    split: str = "val",
    image_size: int = 256,
    per_class: int = 32,
    limit: int | None = None,
    cache: bool = True,
    progress: bool = True,
):
    """Reconstruct ``source`` with ``tokenizer`` into ``out``; returns ``(record, record_path)``."""
    from harness.core.devices import resolve_device
    from harness.core.interfaces import check_images
    from harness.core.io import sha256_file
    from harness.core.registry import load_plugins, tokenizers
    from harness.data.npz import first_per_class, save_samples_npz
    from harness.data.sources import open_source
    from harness.metrics.features import iter_batches
    from harness.metrics.recon import evaluate_reconstruction, paper_comparable
    from harness.runs.records import RunRecord, code_info, env_info, model_info, write_record

    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    options = dict(options or {})
    load_plugins()
    dev = resolve_device(device)
    tok = tokenizers.get(tokenizer)(device=dev, checkpoint=checkpoint, **options)
    src = open_source(
        source, split=split, image_size=image_size, per_class=per_class, limit=limit, batch_size=batch_size
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    reals, recons, codes = [], [], []
    t_enc = t_dec = 0.0
    total = len(src.images) if isinstance(src.images, np.ndarray) else None  # else unknown until read
    bar = tqdm(total=total, unit="img", desc="reconstruct", disable=not progress, leave=False)
    with torch.inference_mode():
        for batch in iter_batches(src.images, batch_size):
            x = check_images(torch.from_numpy(np.ascontiguousarray(batch)), tok.image_size, src.description)
            t0 = time.perf_counter()
            c = tok.encode(x.to(dev))
            t1 = time.perf_counter()
            r = tok.decode(c)
            t_dec += time.perf_counter() - t1
            t_enc += t1 - t0
            reals.append(batch)
            recons.append(r.cpu().numpy())
            codes.append(c.cpu())
            bar.update(len(batch))
    bar.refresh()  # the final count is shown even when the run was faster than tqdm's refresh interval
    bar.close()
    if not reals:
        raise UserError(f"{src.description}: no images")
    real, recon, all_codes = np.concatenate(reals), np.concatenate(recons), torch.cat(codes)

    recon_path = save_samples_npz(out / "reconstructions.npz", recon, src.labels)
    # the originals a report's grid shows beside the reconstructions (a few per class, not the whole set)
    shown = first_per_class(np.zeros(len(real), np.int64) if src.labels is None else src.labels, 8, 8)
    originals_path = save_samples_npz(
        out / "originals.npz", real[shown], None if src.labels is None else np.asarray(src.labels)[shown], index=shown
    )
    t0 = time.perf_counter()
    metrics = evaluate_reconstruction(
        real, recon, inception=inception, codes=all_codes, codebook_size=tok.codebook_size, device=str(dev), cache=cache
    )
    metrics_s = time.perf_counter() - t0
    weights = metrics.pop("weights")
    n = int(metrics.pop("n"))
    comparable, reasons = paper_comparable(weights, n, src.description, real.shape[1:3])
    notes = (
        []
        if comparable
        else [
            "not paper-comparable: rFID papers use the 50k ImageNet val images at 256 px with the official Inception "
            f"weights ({'; '.join(reasons)})"
        ]
    )
    record = RunRecord(
        kind="recon",
        model=model_info(tok.info()),
        code=code_info(),
        env=env_info(dev),
        spec={
            "source": source,
            "source_description": src.description,
            "tokenizer": tokenizer,
            "checkpoint": checkpoint,
            "options": options,
            "inception": inception,
        },
        samples={
            "n": n,
            "npz": str(recon_path),
            "npz_sha256": sha256_file(recon_path),
            "originals_npz": str(originals_path),
            "image_size": list(real.shape[1:3]),
        },
        metrics={k: (None if v is None else float(v)) for k, v in metrics.items()},
        metric_provenance={
            "weights": weights,
            "rfid_reference": "statistics of the same real images",
            "not_comparable_because": reasons,
            "psnr_ssim": "per image on uint8 (data range 255), averaged",
        },
        paper_comparable=comparable,
        speed={
            "encode_images_per_s": n / t_enc if t_enc else None,
            "decode_images_per_s": n / t_dec if t_dec else None,
            "batch_size": batch_size,
            "device": str(dev),
        },
        timings={"encode_s": round(t_enc, 3), "decode_s": round(t_dec, 3), "metrics_s": round(metrics_s, 3)},
        notes=notes,
    )
    path = write_record(record, out, "recon_record.json")
    _grid(real, recon, out / "recon_grid.png")
    return record, path
