"""``alitok-bench ablate SUITE.yaml --preset NAME --out DIR [--plan]``: the ablation suite.

Trains each row's tokenizer and AR generator per paired seed, evaluates them on held-out images and
writes the table (mean ± sd, paired differences to the baseline row) and bar plot under ``--out``
(``harness.suites.ablation``). A rerun of the same command skips finished folders and resumes the rest.
``--plan`` runs nothing: it prints the jobs, the commands and what is missing (exit 1 if anything is).
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("suite", help="ablation suite YAML (e.g. alitok/configs/ablation.yaml)")
    p.add_argument("--preset", required=True, help="a preset of the suite (tiny, imagenet)")
    p.add_argument("--out", required=True, help="output folder; reused to resume")
    p.add_argument("--rows", default=None, help="comma list of rows to run (default: all)")
    p.add_argument("--seeds", default=None, help="comma list of seeds (default: the preset's)")
    p.add_argument(
        "--imagenet-root",
        default=None,
        metavar="DIR",
        help="ImageNet folder (train/ and val/ class folders) instead of the preset's imagenet_root",
    )
    p.add_argument("--plan", action="store_true", help="validate and print the plan; run nothing")
    p.add_argument("--summarize", action="store_true", help="only rebuild table/plot from finished folders")


def run(args) -> int:
    from harness.suites import ablation

    rows = [r for r in args.rows.split(",") if r] if args.rows else None
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s] if args.seeds else None
    except ValueError:
        from harness.core.config import ConfigError

        raise ConfigError(f"--seeds: {args.seeds!r} is not a comma list of integers") from None
    suite = ablation.load_suite(args.suite, args.preset, rows, seeds, imagenet_root=args.imagenet_root)
    if args.plan:
        report = ablation.validate(suite, args.out)
        print(json.dumps(report, indent=1))
        return 1 if report["missing"] else 0
    summary = ablation.summarize(suite, args.out) if args.summarize else ablation.run(suite, args.out)
    ablation.print_summary(summary)
    print(f"wrote {args.out}/summary.json, ablation_table.md, ablation_bars.png")
    return 0
