"""``run --executor local|slurm``, ``--plan``, ``--status OUT``, ``--cancel OUT``: the cluster side of the run verb."""

from __future__ import annotations

from pathlib import Path

from harness.suites.cluster import executor
from harness.suites.cluster.plan import Resources, plan_suite, render


def run_cluster(args) -> int:
    if args.status:
        for j in executor.status(Path(args.status)):
            what = (
                f"{j['label']} task {j['task']} chunks {j['chunk_range']}"
                if j["kind"] == "sample"
                else f"{j['label'] or 'suite'}"
            )
            print(f"{j['job_id']:>12}  {j['kind']:<9} {j['status']:<10} tries {j['tries']}  {what}")
        return 0
    if args.cancel:
        ids = executor.cancel(Path(args.cancel))
        print(f"cancelled {len(ids)} job(s): {' '.join(ids)}" if ids else "nothing to cancel")
        return 0
    from harness.core.errors import UserError
    from harness.suites.suite import get_suite

    if args.suite is None:
        raise UserError("run: name a suite (or --status OUT / --cancel OUT)")
    suite = get_suite(args.suite, args.set)
    res = Resources(
        executor="local" if args.executor == "inline" else args.executor,
        gpus_per_job=args.gpus_per_job,
        nodes=args.nodes,
        time_min=args.time,
        partition=args.partition,
        array_parallelism=args.array_parallelism,
        tasks_per_entry=args.tasks_per_entry,
        images_per_gpu_s=args.images_per_gpu_s,
        cpus_per_task=args.cpus_per_task,
        gpus=args.device != "cpu",
    )
    entries = plan_suite(suite, res, tuple(args.only))
    if args.plan:
        print(render(suite, entries, res))
        return 0
    out = Path(args.out or Path("runs") / suite.name)
    live: dict = {}
    state = executor.submit(suite, out, entries, res, device=args.device, dtype=args.dtype, tf32=args.tf32, live=live)
    print(f"submitted {len(state['jobs'])} job(s) ({res.executor}); state: {out}/_cluster/state.json")
    if res.executor == "local":
        executor.follow_local(suite, out, res, device=args.device, dtype=args.dtype, tf32=args.tf32, live=live)
    else:
        print(f"follow: alitok-bench run {args.suite} --status {out}    cancel: --cancel {out}")
    return 0
