"""``alitok-bench recon SOURCE --tokenizer NAME --out DIR``: reconstruction quality of a tokenizer.

Real images in (same sources as ``ref-stats build``), ``decode(encode(x))`` out, then rFID against
the statistics of the same real images, PSNR, SSIM and codebook usage/entropy
(``harness.metrics.recon``). Writes ``reconstructions.npz`` (ADM format, re-evaluable),
``recon_grid.png`` (real row over reconstruction row) and ``recon_record.json``.

The rFID protocol of the papers (``imagenet256-rfid50k``) is this verb on the 50k ImageNet val
images with ``--image-size 256`` and ``--inception official``; only that combination is marked
``paper_comparable``. Real and reconstructed images are held in memory (about 20 GB at 50k x 256 px).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm


def add_arguments(p) -> None:
    p.add_argument("source", help="npz | shards folder | PNG folder | ImageNet folder | embedded[:split[:size]]")
    p.add_argument("--tokenizer", required=True, help="a name from `alitok-bench list tokenizers`")
    p.add_argument("--checkpoint", default=None, help="tokenizer weights (official models need one)")
    p.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="extra tokenizer factory option, repeatable")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--inception", default="fid-helper", help="official | fid-helper | random:SEED | PATH")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--split", default="val", help="ImageNet folder split (default val)")
    p.add_argument("--image-size", type=int, default=256, help="ImageNet centre-crop size (default 256)")
    p.add_argument("--per-class", type=int, default=32, help="embedded: images per class (default 32)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _grid(real: np.ndarray, recon: np.ndarray, path: Path, n: int = 16) -> None:
    from PIL import Image

    from harness.io import atomic_path

    row = lambda a: np.concatenate(list(a[:n]), axis=1)  # noqa: E731
    canvas = np.concatenate([row(real), row(recon)], axis=0)
    scale = max(1, 256 // canvas.shape[0])
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    with atomic_path(path) as f:
        img.save(f, format="PNG")


def run(args) -> int:
    from harness import config
    from harness.data.npz import save_samples_npz
    from harness.data.sources import open_source
    from harness.devices import resolve_device
    from harness.interfaces import check_images
    from harness.metrics.features import iter_batches
    from harness.metrics.recon import evaluate_reconstruction
    from harness.records import RunRecord, code_info, env_info, model_info, sha256_file, write_record
    from harness.registry import load_plugins, tokenizers

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    load_plugins()
    device = resolve_device(args.device)
    options = config.apply_overrides({}, args.options)
    tok = tokenizers.get(args.tokenizer)(device=device, checkpoint=args.checkpoint, **options)
    src = open_source(args.source, split=args.split, image_size=args.image_size, per_class=args.per_class,
                      limit=args.limit, batch_size=args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    reals, recons, codes = [], [], []
    t_enc = t_dec = 0.0
    total = len(src.images) if isinstance(src.images, np.ndarray) else None  # else unknown until read
    bar = tqdm(total=total, unit="img", desc="reconstruct", disable=args.no_progress, leave=False)
    with torch.inference_mode():
        for batch in iter_batches(src.images, args.batch_size):
            x = check_images(torch.from_numpy(np.ascontiguousarray(batch)), tok.image_size, src.description)
            t0 = time.perf_counter()
            c = tok.encode(x.to(device))
            t1 = time.perf_counter()
            r = tok.decode(c)
            t_dec += time.perf_counter() - t1
            t_enc += t1 - t0
            reals.append(batch)
            recons.append(r.cpu().numpy())
            codes.append(c.cpu())
            bar.update(len(batch))
    bar.close()
    if not reals:
        raise ValueError(f"{src.description}: no images")
    real, recon, all_codes = np.concatenate(reals), np.concatenate(recons), torch.cat(codes)

    recon_path = save_samples_npz(out / "reconstructions.npz", recon, src.labels)
    t0 = time.perf_counter()
    metrics = evaluate_reconstruction(real, recon, inception=args.inception, codes=all_codes,
                                      codebook_size=tok.codebook_size, device=str(device), cache=not args.no_cache)
    metrics_s = time.perf_counter() - t0
    weights = metrics.pop("weights")
    n = int(metrics.pop("n"))
    comparable = bool(weights.get("official") and n == 50_000 and src.description.startswith("imagenet:")
                      and real.shape[1:3] == (256, 256))
    notes = [] if comparable else [
        "not paper-comparable: rFID papers use the 50k ImageNet val images at 256 px with the official Inception weights"]
    record = RunRecord(
        kind="recon", model=model_info(tok.info()), code=code_info(), env=env_info(device),
        spec={"source": args.source, "source_description": src.description, "tokenizer": args.tokenizer,
              "checkpoint": args.checkpoint, "options": options, "inception": args.inception},
        samples={"n": n, "npz": str(recon_path), "npz_sha256": sha256_file(recon_path),
                 "image_size": list(real.shape[1:3])},
        metrics={k: (None if v is None else float(v)) for k, v in metrics.items()},
        metric_provenance={"weights": weights, "rfid_reference": "statistics of the same real images",
                           "psnr_ssim": "per image on uint8 (data range 255), averaged"},
        paper_comparable=comparable,
        speed={"encode_images_per_s": n / t_enc if t_enc else None, "decode_images_per_s": n / t_dec if t_dec else None,
               "batch_size": args.batch_size, "device": str(device)},
        timings={"encode_s": round(t_enc, 3), "decode_s": round(t_dec, 3), "metrics_s": round(metrics_s, 3)},
        notes=notes)
    path = write_record(record, out, "recon_record.json")
    _grid(real, recon, out / "recon_grid.png")
    for key in ("rfid", "psnr", "ssim", "codebook_usage", "codebook_perplexity"):
        value = record.metrics.get(key)
        print(f"{key:>20}: {'n/a' if value is None else f'{value:.4f}'}")
    print(f"{'paper_comparable':>20}: {comparable}")
    print(f"wrote {path}")
    return 0
