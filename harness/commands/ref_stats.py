"""``alitok-bench ref-stats build SOURCE --out REF.npz`` and ``alitok-bench ref-stats verify REF.npz``.

SOURCE: an npz (``arr_0``), a shards folder, a folder of PNGs, an ImageNet folder (``root/<split>/...``,
ADM centre crop to ``--image-size``), or ``embedded[:split[:size]]`` (the natural-patches dataset).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from harness.errors import InputFileError


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="extract features of SOURCE and write reference statistics")
    b.add_argument("source", help="npz | shards folder | PNG folder | ImageNet folder | embedded[:split[:size]]")
    b.add_argument("--out", required=True, help="output .npz (a REF.npz.json metadata sidecar is written beside it)")
    b.add_argument("--inception", default="fid-helper", help="official | fid-helper | random:SEED | PATH")
    b.add_argument("--batch-size", type=int, default=50)
    b.add_argument("--device", default="auto")
    b.add_argument("--split", default="val", help="ImageNet folder split (default val)")
    b.add_argument("--image-size", type=int, default=256, help="ImageNet centre-crop size (default 256)")
    b.add_argument("--per-class", type=int, default=64, help="embedded: images per class (default 64)")
    b.add_argument("--limit", type=int, default=None, help="use only the first N images (folders)")
    v = sub.add_parser("verify", help="check a reference file (keys, shapes, PSD covariances, sidecar)")
    v.add_argument("ref")


def _png_batches(files: list[Path], batch: int) -> Iterator[np.ndarray]:
    from PIL import Image

    for i in range(0, len(files), batch):
        imgs = []
        for f in files[i : i + batch]:
            try:
                with Image.open(f) as im:
                    imgs.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except OSError as e:
                raise InputFileError(f, f"unreadable image ({e})") from None
        if len({a.shape for a in imgs}) != 1:
            raise InputFileError(files[i], "images in the folder differ in size")
        yield np.stack(imgs)


def _imagenet_batches(ds, n: int, batch: int) -> Iterator[np.ndarray]:
    for i in range(0, n, batch):
        yield np.stack([ds.load(j) for j in range(i, min(n, i + batch))])


def resolve_source(args):
    """(images: array | path | iterator, description)."""
    src = args.source
    if src == "embedded" or src.startswith("embedded:"):
        from harness.data.embedded import natural_patches

        parts = src.split(":")
        split = parts[1] if len(parts) > 1 and parts[1] else "val"
        size = int(parts[2]) if len(parts) > 2 else 32
        images, _ = natural_patches(split=split, image_size=size, per_class=args.per_class, seed=0)
        return images, f"embedded natural patches split={split} size={size} per_class={args.per_class} seed=0"
    p = Path(src)
    if p.is_file():
        return p, f"npz:{p}"
    if not p.is_dir():
        raise InputFileError(p, "source not found (npz, folder, or embedded[:split[:size]])")
    if any(p.glob("chunk_*.npz")) or (p / "shards").is_dir():
        return p, f"shards:{p}"
    if (p / args.split).is_dir():
        from harness.data.imagenet import ImageFolderDataset

        ds = ImageFolderDataset(p, args.split, args.image_size)
        n = len(ds) if args.limit is None else min(args.limit, len(ds))
        return _imagenet_batches(ds, n, args.batch_size), f"imagenet:{p}/{args.split} center_crop_arr {args.image_size} n={n}"
    files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".png")
    if not files:
        raise InputFileError(p, f"no .png files, chunk_*.npz shards or {args.split!r} split folder")
    files = files[: args.limit] if args.limit else files
    return _png_batches(files, args.batch_size), f"png-folder:{p} n={len(files)}"


def run(args) -> int:
    from harness.metrics.refstats import build_reference_from_images, sidecar_path, verify_reference

    if args.action == "verify":
        report = verify_reference(args.ref)
        print(json.dumps(report, indent=1, sort_keys=True, default=str))
        print(f"ok: {args.ref}")
        return 0
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    images, desc = resolve_source(args)
    out = build_reference_from_images(images, args.out, inception=args.inception, batch_size=args.batch_size,
                                      device=args.device, source_desc=desc)
    print(f"wrote {out} and {sidecar_path(out)}")
    return 0
