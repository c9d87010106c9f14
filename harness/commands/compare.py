"""``alitok-bench compare BASE NEW --fail fid:+2% --fail images_per_s:-10%``: regression gates for CI.

Exit 0 when every gate passes, 1 when any fails (each failing gate is printed), 2 on bad input.
"""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("base", help="baseline record file or folder")
    p.add_argument("new", help="new record file or folder")
    p.add_argument("--fail", action="append", default=[], metavar="METRIC:LIMIT", required=True,
                   help="gate, repeatable: fid:+2%%, images_per_s:-10%%, fid:+2sigma, fid:+0.5")


def run(args) -> int:
    from harness.compare import compare, parse_gate
    from harness.report.collect import collect

    gates = [parse_gate(g) for g in args.fail]
    checks = compare(collect([args.base]), collect([args.new]), gates)
    for c in checks:
        print(c.line())
    failed = [c for c in checks if not c.passed]
    if failed:
        print(f"compare: {len(failed)} of {len(checks)} checks FAILED: "
              + "; ".join(f"{c.gate.text} on {c.label}" for c in failed))
        return 1
    print(f"compare: all {len(checks)} checks passed")
    return 0
