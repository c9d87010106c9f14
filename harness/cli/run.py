"""``alitok-bench run SUITE``: sample (and evaluate) every model of a suite, write records, print a table.

``torchrun --nproc_per_node N -m harness run SUITE --out OUT`` splits each entry's sampling and feature
extraction over N processes (the same samples and metrics as one process); rank 0 prints and writes."""

from __future__ import annotations

from harness.cli.common_args import (
    add_dtype_args,
    add_json_arg,
    add_weights_root_arg,
    frame_rows,
    print_json,
    use_weights_root,
)


def add_arguments(p) -> None:
    p.add_argument("suite", nargs="?", help="registered suite name (e.g. demo) or a suite YAML file")
    p.add_argument("--out", help="output folder (default: runs/<suite>/)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a suite key; per entry by position or label: entries.0.model.checkpoint=PATH or "
        "LABEL.model.checkpoint=PATH",
    )
    add_weights_root_arg(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_dtype_args(p, "model dtype of every sampling run")
    p.add_argument("--force", action="store_true", help="overwrite model folders made by a different spec")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="LABEL",
        help="run only this label (or every run of this entry's sweep); repeatable",
    )
    p.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    add_json_arg(p)
    c = p.add_argument_group("cluster (submitit; see harness/suites/cluster/)")
    c.add_argument(
        "--executor",
        choices=["inline", "local", "slurm"],
        default="inline",
        help="inline: this process (default); local|slurm: submit jobs through submitit",
    )
    c.add_argument("--partition", help="SLURM partition of the jobs")
    c.add_argument("--gpus-per-job", type=int, default=1, help="processes (GPUs) per node of a sampling task")
    c.add_argument("--nodes", type=int, default=1, help="nodes per sampling task")
    c.add_argument("--time", type=int, default=240, metavar="MIN", help="time limit per job; past it, requeue")
    c.add_argument("--array-parallelism", type=int, default=64, help="array elements running at once")
    c.add_argument("--cpus-per-task", type=int, default=8, help="CPU cores per process")
    c.add_argument("--tasks-per-entry", type=int, default=1, help="sampling tasks (array elements) per entry")
    c.add_argument("--images-per-gpu-s", type=float, help="throughput for --plan's GPU-hours (default: an assumption)")
    c.add_argument("--plan", action="store_true", help="print the jobs, GPUs and GPU-hours; submit nothing")
    c.add_argument("--status", metavar="OUT", help="status of the jobs submitted into OUT")
    c.add_argument("--cancel", metavar="OUT", help="cancel the unfinished jobs submitted into OUT")


def run(args) -> int:
    import sys
    from pathlib import Path

    from harness.report.table_text import print_table
    from harness.suites.suite import get_suite, run_suite

    use_weights_root(args)
    if args.status or args.cancel or args.plan or args.executor != "inline":
        from harness.cli.run_cluster import run_cluster

        return run_cluster(args)
    if args.suite is None:
        from harness.core.errors import UserError

        raise UserError("run: name a suite (or --status OUT / --cancel OUT)")
    from harness.core import devices
    from harness.suites.suite import is_main_process

    suite = get_suite(args.suite, args.set)
    out = Path(args.out or Path("runs") / suite.name)
    main = is_main_process()  # under torchrun: rank 0 prints and writes, the other ranks only sample and extract
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print  # stdout holds the JSON alone
    if main:
        say(f"suite {suite.name}: {suite.description}".rstrip(": "))
    with devices.leaving_together():  # no rank leaves while rank 0 works (its last entry may be a recon)
        table = run_suite(
            suite,
            out,
            device=args.device,
            dtype=args.dtype,
            tf32=args.tf32,
            force=args.force,
            progress=not (args.no_progress or args.json),
            only=tuple(args.only),
            echo=say if main else (lambda line: None),
        )
    if not main:
        return 0
    from harness.core.io import atomic_path

    with atomic_path(out / "summary.csv", "w") as f:
        table.to_csv(f, index=False)
    if args.json:
        print_json({"suite": suite.name, "out": str(out), "rows": frame_rows(table)})
        return 0
    print()
    print_table(table)
    if table.attrs.get("protocol"):
        print("\n" + table.attrs["protocol"])
    print(f"\nrecords: {out}/<label>/*_record.json   table: {out}/summary.csv")
    print(f"report:  alitok-bench report {out} --out {out}/report")
    return 0
