"""``alitok-bench run SUITE``: sample (and evaluate) every model of a suite, write records, print a table."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("suite", help="registered suite name (e.g. demo) or a suite YAML file")
    p.add_argument("--out", help="output folder (default: runs/<suite>/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a suite key")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--force", action="store_true", help="overwrite model folders made by a different spec")
    p.add_argument("--only", action="append", default=[], metavar="LABEL",
                   help="run only this label (or every run of this entry's sweep); repeatable")
    p.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from pathlib import Path

    from harness.report.table_text import print_table
    from harness.suites import get_suite, run_suite

    suite = get_suite(args.suite, args.set)
    out = Path(args.out or Path("runs") / suite.name)
    print(f"suite {suite.name}: {suite.description}".rstrip(": "))
    table = run_suite(suite, out, device=args.device, dtype=args.dtype, tf32=args.tf32, force=args.force,
                      progress=not args.no_progress, only=tuple(args.only))
    from harness.io import atomic_path

    with atomic_path(out / "summary.csv", "w") as f:
        table.to_csv(f, index=False)
    print()
    print_table(table)
    if table.attrs.get("protocol"):
        print("\n" + table.attrs["protocol"])
    print(f"\nrecords: {out}/<label>/*_record.json   table: {out}/summary.csv")
    print(f"report:  alitok-bench report {out} --out {out}/report")
    return 0
