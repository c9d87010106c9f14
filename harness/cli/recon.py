"""``alitok-bench recon SOURCE --tokenizer NAME --out DIR``: reconstruction quality of a tokenizer.

Real images in (same sources as ``ref-stats build``), ``decode(encode(x))`` out, then rFID against
the statistics of the same real images, PSNR, SSIM and codebook usage/entropy
(``harness.metrics.recon``; the run itself is ``harness.metrics.recon_run``, shared with suites). Writes ``reconstructions.npz`` (ADM format, re-evaluable),
``recon_grid.png`` (real row over reconstruction row) and ``recon_record.json``.

The rFID protocol of the papers (``imagenet256-rfid50k``) is this verb on the 50k ImageNet val
images with ``--image-size 256`` and ``--inception official``; only that combination is marked
``paper_comparable``. Real and reconstructed images are held in memory (about 20 GB at 50k x 256 px).
"""

from __future__ import annotations

from harness.cli.common_args import (
    add_feature_args,
    add_image_source_args,
    add_json_arg,
    add_weights_root_arg,
    print_json,
    use_weights_root,
)


def add_arguments(p) -> None:
    p.add_argument("source", help="npz | shards folder | PNG folder | ImageNet folder | embedded[:split[:size]]")
    p.add_argument("--tokenizer", required=True, help="a name from `alitok-bench list tokenizers`")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="tokenizer weights (default for official models: their file in the weights root, see `fetch`)",
    )
    p.add_argument(
        "--option",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra tokenizer factory option, repeatable",
    )
    p.add_argument("--out", required=True, help="output folder")
    add_feature_args(p, batch_size=64)
    add_image_source_args(p, per_class=32)
    add_weights_root_arg(p)
    add_json_arg(p)


def run(args) -> int:
    from harness.core import config
    from harness.fetch.needs import with_official_files
    from harness.metrics.recon_run import run_recon
    from harness.runs.specs import ModelSpec

    use_weights_root(args)
    # no --checkpoint: the official file in the weights root, when `alitok-bench fetch` put it there
    checkpoint = args.checkpoint or with_official_files(ModelSpec(args.tokenizer)).checkpoint
    record, path = run_recon(
        args.source,
        args.tokenizer,
        args.out,
        checkpoint=checkpoint,
        options=config.apply_overrides({}, args.options),
        inception=args.inception,
        batch_size=args.batch_size,
        device=args.device,
        split=args.split,
        image_size=args.image_size,
        per_class=args.per_class,
        limit=args.limit,
        cache=not args.no_cache,
        progress=not (args.quiet or args.json),
    )
    if args.json:
        print_json({"metrics": record.metrics, "paper_comparable": record.paper_comparable, "record": str(path)})
        return 0
    for key in ("rfid", "psnr", "ssim", "codebook_usage", "codebook_perplexity"):
        value = record.metrics.get(key)
        print(f"{key:>20}: {'n/a' if value is None else f'{value:.4f}'}")
    print(f"{'paper_comparable':>20}: {record.paper_comparable}")
    print(f"wrote {path}")
    return 0
