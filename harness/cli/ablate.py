"""``alitok-bench ablate SUITE.yaml --preset NAME --out DIR [--plan]``: the ablation suite.

Trains each row's tokenizer and AR generator per paired seed, evaluates them on held-out images and
writes the table (mean ± sd, paired differences to the baseline row) and bar plot under ``--out``
(``harness.suites.ablation``). A rerun of the same command skips finished folders and resumes the rest.
``--plan`` runs nothing: it prints every job (seed, row, stage, done or to do, folder), the first seed's training
commands and what is missing, as a table or with ``--json`` one JSON document (exit 1 if anything is missing).
"""

from __future__ import annotations

from harness.cli.common_args import add_json_arg, print_json


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
    add_json_arg(p)


def plan_document(suite, out) -> dict:
    """``ablation.validate``'s report with every job listed and the commands' scope said, never silently cut."""
    from harness.suites import ablation

    report = ablation.validate(suite, out)
    jobs = ablation.plan(suite, out)
    trained = sum(j.stage != "eval" for j in jobs)
    report["job_list"] = [
        {"seed": j.seed, "row": j.row, "stage": j.stage, "done": j.done, "out": str(j.out)} for j in jobs
    ]
    report["commands_scope"] = (
        f"the {len(report['commands'])} training commands of seed {suite.seeds[0]}, of {trained} training jobs "
        f"in all; the other seeds run the same commands with their seed and folder; evaluation jobs "
        f"({len(jobs) - trained}) run inside `ablate`"
    )
    return report


def print_plan(report: dict) -> None:
    jobs = report["job_list"]
    print(f"ablation plan: {report['suite']} preset {report['preset']}, world size {report['world_size']}")
    print(
        f"{len(jobs)} jobs ({', '.join(f'{n} {s}' for s, n in report['jobs_by_stage'].items())}), "
        f"{report['done']} done; rows {', '.join(report['rows'])}; seeds {', '.join(map(str, report['seeds']))}"
    )
    width = max((len(j["row"]) for j in jobs), default=3)
    print(f"\n{'seed':>4}  {'row':<{width}}  {'stage':<6}  {'status':<6}  folder")
    for j in jobs:
        status = "done" if j["done"] else "to do"
        print(f"{j['seed']:>4}  {j['row']:<{width}}  {j['stage']:<6}  {status:<6}  {j['out']}")
    print(f"\ncommands ({report['commands_scope']}):")
    for command in report["commands"]:
        print(f"  {command}")
    if report["missing"]:
        print("\nmissing:")
        for line in report["missing"]:
            print(f"  {line}")
    else:
        print("\nnothing missing")


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
        report = plan_document(suite, args.out)
        print_json(report) if args.json else print_plan(report)
        return 1 if report["missing"] else 0
    if args.json:  # the runs' own lines go to stderr: stdout holds the JSON alone
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):
            summary = ablation.summarize(suite, args.out) if args.summarize else ablation.run(suite, args.out)
        print_json(summary)
        return 0
    summary = ablation.summarize(suite, args.out) if args.summarize else ablation.run(suite, args.out)
    ablation.print_summary(summary)
    print(f"wrote {args.out}/summary.json, ablation_table.md, ablation_bars.png")
    return 0
