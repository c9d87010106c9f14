"""``alitok-bench ref-stats build SOURCE --out REF.npz`` and ``alitok-bench ref-stats verify REF.npz``.

SOURCE: an npz (``arr_0``), a sampling folder, a folder of PNG/JPEG images, an ImageNet folder
(``root/<split>/...``, ADM centre crop to ``--image-size``), or ``embedded[:split[:size]]``.
"""

from __future__ import annotations

import json
import sys

from harness.cli.common_args import add_feature_args, add_image_source_args


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="extract features of SOURCE and write reference statistics")
    b.add_argument("source", help="npz | sampling folder | PNG/JPEG folder | ImageNet folder | embedded[:split[:size]]")
    b.add_argument("--out", required=True, help="output .npz (metadata inside, and a REF.npz.json copy beside it)")
    add_feature_args(b, batch_size=50)
    b.add_argument(
        "--dinov2",
        default=None,
        metavar="PATH|random:SEED",
        help="also store FD-DINOv2 statistics (mu_dinov2/sigma_dinov2) made with these DINOv2 ViT-L/14 weights",
    )
    add_image_source_args(b, per_class=64)
    b.add_argument("--wait", action="store_true", help="if another build writes the same --out, wait for it")
    v = sub.add_parser("verify", help="check a reference file (keys, shapes, PSD covariances, metadata)")
    v.add_argument("ref", help="reference statistics npz (ours or the ADM evaluator's)")
    v.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")


def resolve_source(args):
    """(images: array | path | iterator, description)."""
    from harness.data.sources import open_source

    src = open_source(
        args.source,
        split=args.split,
        image_size=args.image_size,
        per_class=args.per_class,
        limit=args.limit,
        batch_size=args.batch_size,
    )
    return src.images, src.description


def run(args) -> int:
    from harness.metrics.refstats import (
        build_reference_from_images,
        check_reference_out,
        sidecar_path,
        verify_reference,
    )

    if args.action == "verify":
        report = verify_reference(args.ref)
        if args.json:
            sys.stdout.write(json.dumps({**report, "ok": True}, indent=1, sort_keys=True, default=str) + "\n")
        else:
            print(json.dumps(report, indent=1, sort_keys=True, default=str))
            vouched = {
                "stats digest": "statistics match the digest stored at build",
                "sidecar": "file matches its sidecar's sha256 (built before statistics digests)",
                "none": f"an ADM-format file without our metadata: nothing to check it against beyond "
                f"its sha256 {report['sha256'][:16]}...",
            }[report["integrity"]]
            print(f"ok: {args.ref} ({vouched})")
        return 0
    check_reference_out(args.out)  # before extraction: a folder or unwritable --out fails in a second
    images, desc = resolve_source(args)
    out = build_reference_from_images(
        images,
        args.out,
        inception=args.inception,
        batch_size=args.batch_size,
        device=args.device,
        source_desc=desc,
        cache=not args.no_cache,
        progress=False if args.quiet else None,
        wait=args.wait,
        dinov2=args.dinov2,
    )
    print(f"wrote {out} and {sidecar_path(out)}")
    return 0
