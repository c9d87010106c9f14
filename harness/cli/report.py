"""``alitok-bench report RESULTS... --out DIR``: tables, plots and a browsable ``index.html`` regenerated from
run records alone."""

from __future__ import annotations

from harness.cli.common_args import add_json_arg, frame_rows, print_json


def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="record files (*record*.json) or folders holding them")
    p.add_argument("--out", required=True, help="folder for results.{md,csv,tex} and the figures (PNG + SVG)")
    p.add_argument("--title", default="Results", help="table title and LaTeX caption")
    p.add_argument("--no-grids", action="store_true", help="skip sample grids (they read the samples npz files)")
    p.add_argument("--claims", help="claims YAML (e.g. results/claims/alitok.yaml): its verdicts go into index.html")
    add_json_arg(p)


def run(args) -> int:
    import sys

    from harness.report.build import build_report
    from harness.report.collect import summary_frame

    echo = (lambda line: print(line, file=sys.stderr)) if args.json else print  # stdout holds the JSON alone
    done = build_report(
        args.results, args.out, title=args.title, grids=not args.no_grids, claims=args.claims, echo=echo
    )
    if args.json:  # the tidy results table and what was written
        print_json({"out": str(args.out), **done, "rows": frame_rows(summary_frame(args.results))})
    return 0
