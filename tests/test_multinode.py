"""Multi-node torchrun for one entry: two launcher processes on this machine stand for two nodes
(``--nnodes 2 --node-rank 0|1``, c10d rendezvous on 127.0.0.1, gloo), and the samples they write into
one folder equal a one-process run byte for byte (the chunk plan makes the bytes independent of the
world size; this checks the launcher, the rendezvous and the shared folder lock across nodes)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from cli_runs import REPO, env, python

ARGS = [
    "-m",
    "harness",
    "sample",
    "--model",
    "titok-ar-tiny",
    "--protocol",
    "demo",
    "--num-samples",
    "22",
    "--chunk-size",
    "4",
    "--device",
    "cpu",
    "--no-progress",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_match_one_process(tmp_path):
    one = python(*ARGS, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-2000:]
    port = _free_port()
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                "--rdzv-id",
                "multinode-test",
                *ARGS,
                "--out",
                str(tmp_path / "two"),
            ],
            cwd=REPO,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for rank, p in enumerate(nodes):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"node {rank}: {err[-2000:]}"
    lines = [json.loads(x) for x in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {e["conditions"]["world_size"] for e in lines} == {2}  # made by the 2-node job
    assert (tmp_path / "two" / "samples.npz").read_bytes() == (tmp_path / "one" / "samples.npz").read_bytes()
