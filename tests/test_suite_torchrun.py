"""`torchrun --nproc_per_node 2 -m harness run SUITE`: two gloo processes give the one-process samples (byte for
byte) and metrics (bit for bit); rank 0 alone reconstructs, writes the records and prints the table."""

import json

from cli_runs import python

# A sampling entry (sampled and evaluated across the ranks), a recon entry (rank 0 alone), and an entry
# whose checkpoint is missing (a skipped record, written once). 11 samples: one per class of the demo's 11.
SUITE = """
name: two-ranks
protocol: demo
num_samples: 11
metrics: [fid]
reference: "embedded:val"
reference_per_class: 1
inception: "random:0"
entries:
  - label: tiny
    model: {name: alitok-tiny}
  - label: tok
    task: recon
    model: {name: alitok-tiny}
    source: "embedded:val:32"
  - label: big
    model: {name: alitok-b, checkpoint: absent/alitok_b.bin}
"""


def test_run_under_torchrun_matches_one_process(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    args = ["-m", "harness", "run", "s.yaml", "--device", "cpu", "--no-progress"]
    # each run its own feature cache, so the two-process run extracts (sharded) instead of reading the
    # one-process run's cached features
    one = python(*args, "--out", "one", cwd=tmp_path, extra_env={"ALITOK_BENCH_CACHE": str(tmp_path / "c1")})
    assert one.returncode == 0, one.stderr[-3000:]
    two = python(*args, "--out", "two", nproc=2, cwd=tmp_path, extra_env={"ALITOK_BENCH_CACHE": str(tmp_path / "c2")})
    assert two.returncode == 0, two.stderr[-3000:]

    a, b = tmp_path / "one", tmp_path / "two"
    assert (b / "tiny" / "samples.npz").read_bytes() == (a / "tiny" / "samples.npz").read_bytes()
    rec_a, rec_b = (json.loads((d / "tiny" / "run_record.json").read_text()) for d in (a, b))
    assert rec_b["metric_provenance"]["feature_extraction"] == {"world_size": 2, "samples": {"inception": "sharded"}}
    # same batches, all-gathered bytes, rank 0 streams the same moments, 1 thread each: FID compared with ==
    assert rec_b["metrics"]["fid"] == rec_a["metrics"]["fid"] is not None
    recon_a, recon_b = (json.loads((d / "tok" / "recon_record.json").read_text()) for d in (a, b))
    assert recon_b["metrics"] == recon_a["metrics"]
    assert json.loads((b / "big" / "run_record.json").read_text())["status"] == "skipped"
    assert _summary(b).equals(_summary(a))
    # rank 0 alone printed: one "tok:" line, one table
    assert two.stdout.count("tok: ") == 1 and two.stdout.count("records: ") == 1, two.stdout


def _summary(folder):
    import pandas as pd

    table = pd.read_csv(folder / "summary.csv")
    return table.drop(columns=["images/s"])  # throughput is a timing, not a result
