"""``devices.wait_for_rank0``: the other ranks wait for rank 0's solo work (a recon entry, a reference's
features, the record it writes last) in a gloo group of their own, so a wait longer than the default
group's timeout (NCCL 10 min, gloo 30 min) is not a timeout. Two real gloo processes under torchrun, the
default group's timeout shortened to 2 s and rank 0 busy for 8 s; the same wait as a plain barrier on
the default group is the control that shows the short timeout was in force."""

from __future__ import annotations

from cli_runs import python

WORKER = """
import sys, time, datetime
import torch.distributed as dist
import torch.distributed.distributed_c10d as c10d

c10d.default_pg_timeout = datetime.timedelta(seconds=2)  # read by init_process_group for gloo
from harness.core import devices

devices.init_distributed("cpu")
if dist.get_rank() == 0:
    time.sleep(8)
getattr(devices, sys.argv[1])()
print(f"rank {dist.get_rank()} through", flush=True)
devices.leave_group() if sys.argv[1] == "wait_for_rank0" else devices.cleanup_distributed()
"""


def _two_ranks(tmp_path, wait: str):
    (tmp_path / "worker.py").write_text(WORKER)
    return python("worker.py", wait, nproc=2, cwd=tmp_path)


def test_the_other_ranks_outwait_the_default_timeout(tmp_path):
    run = _two_ranks(tmp_path, "wait_for_rank0")
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(run.stdout.split("\n")[:-1]) == ["rank 0 through", "rank 1 through"], run.stdout


def test_control_a_barrier_on_the_default_group_times_out(tmp_path):
    run = _two_ranks(tmp_path, "barrier")
    assert run.returncode != 0 and "rank 1 through" not in run.stdout, run.stdout
