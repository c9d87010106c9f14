"""``alitok-bench compare BASE NEW --fail fid:+2% --fail images_per_s:-10%``: regression gates for CI.

Exit 0 when every gate passes, 1 when any fails (each failing gate is printed), 2 on bad input and
when BASE and NEW differ in what decides a gated number (one line per label naming the fields; name
those fields with ``--allow-differ`` to gate anyway).
"""

from __future__ import annotations

import sys

from harness.cli.common_args import add_json_arg, print_json


def add_arguments(p) -> None:
    from harness.report.compare import COMPARED_ON

    p.add_argument("base", help="baseline record file or folder")
    p.add_argument("new", help="new record file or folder")
    p.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="METRIC:LIMIT",
        required=True,
        help="gate, repeatable: fid:+2%%, images_per_s:-10%%, fid:+2sigma, fid:+0.5",
    )
    p.add_argument(
        "--allow-differ",
        action="append",
        default=[],
        metavar="FIELD[,FIELD]",
        help="fields BASE and NEW may differ in (repeatable or comma-separated; default none): "
        + ", ".join(COMPARED_ON),
    )
    add_json_arg(p)


def run(args) -> int:
    from harness.report.collect import collect
    from harness.report.compare import NotComparable, compare, parse_allow_differ, parse_gate

    gates = [parse_gate(g) for g in args.fail]
    allowed = parse_allow_differ(args.allow_differ)
    notes: list[str] = []
    try:
        checks = compare(collect([args.base]), collect([args.new]), gates, allowed, notes)
    except NotComparable as e:
        for line in e.lines:
            print(f"compare: {line}", file=sys.stderr)
        if args.json:
            print_json({"comparable": False, "not_comparable": list(e.lines), "passed": False, "checks": []})
        return 2
    failed = [c for c in checks if not c.passed]
    if args.json:
        print_json(
            {
                "comparable": True,
                "passed": not failed,
                "notes": notes,
                "checks": [
                    {
                        "label": c.label,
                        "gate": c.gate.text,
                        "metric": c.gate.metric,
                        "base": c.base,
                        "new": c.new,
                        "passed": c.passed,
                        "detail": c.detail,
                    }
                    for c in checks
                ],
            }
        )
        return 1 if failed else 0
    for line in notes:
        print(line)
    for c in checks:
        print(c.line())
    if failed:
        print(
            f"compare: {len(failed)} of {len(checks)} checks FAILED: "
            + "; ".join(f"{c.gate.text} on {c.label}" for c in failed)
        )
        return 1
    print(f"compare: all {len(checks)} checks passed")
    return 0
