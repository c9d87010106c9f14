"""`torchrun -m harness eval`: two gloo processes split the sample features and give the one-process numbers."""

import json

import numpy as np
from cli_runs import python

from harness.data.npz import save_samples_npz
from harness.metrics.inception import InceptionExtractor
from harness.metrics.refstats import build_reference_from_images
from harness.metrics.weights import resolve_weights


def blobs(n, seed, shift=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 200, (n, 8, 8, 3)).astype(np.uint8) + shift
    return np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)  # 32 px


def test_two_processes_equal_one(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(cache))
    ex = InceptionExtractor(resolve_weights("random:0"), "cpu")
    ref = build_reference_from_images(blobs(8, 1, 30), tmp_path / "ref.npz", inception=ex, batch_size=4, cache=False)
    samples = save_samples_npz(tmp_path / "s.npz", blobs(10, 2), np.arange(10) % 5)
    # batch 3: four batches (3,3,3,1), ranks take two each; prec reads the kept pool3 rows, fid/sfid the moments
    args = [
        "eval",
        str(samples),
        "--ref",
        str(ref),
        "--metrics",
        "fid,sfid,prec",
        "--inception",
        "random:0",
        "--device",
        "cpu",
        "--batch-size",
        "3",
        "--quiet",
    ]
    # Both sides run as subprocesses in one environment (cli_runs.env: OMP_NUM_THREADS=1, so 1 torch thread
    # and 1 OpenBLAS thread). The thread count is not what this test is about: a conv summed by 2 threads
    # rounds differently in float32, and OpenBLAS's threaded dgemm/eigvalsh round the Frechet distance's
    # linear algebra differently (on an Intel Xeon the sFID of this near-singular 2023-dim covariance moved by
    # 1.2e-10 relative between 1 and 2 BLAS threads; an AMD EPYC happened to agree). With equal threads the
    # ranks see the same batches, the all-gather copies bytes and rank 0 streams the same moments, so the
    # numbers are bit-identical on any CPU: compared with ==.
    one = python(
        "-m",
        "harness",
        *args,
        "--no-cache",
        "--out",
        str(tmp_path / "one"),
        cwd=tmp_path,
        extra_env={"ALITOK_BENCH_CACHE": str(cache)},
    )
    assert one.returncode == 0, one.stderr[-3000:]
    run = python(
        "-m",
        "harness",
        *args,
        "--out",
        str(tmp_path / "two"),
        nproc=2,
        cwd=tmp_path,
        extra_env={"ALITOK_BENCH_CACHE": str(cache)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (one,) = (tmp_path / "one").glob("eval_record*.json")
    (two,) = (tmp_path / "two").glob("eval_record*.json")  # rank 0 alone wrote a record
    one, two = json.loads(one.read_text()), json.loads(two.read_text())
    assert two["metric_provenance"]["feature_extraction"] == {"world_size": 2, "samples": {"inception": "sharded"}}
    assert one["metric_provenance"]["feature_extraction"] == {"world_size": 1, "samples": {"inception": "single"}}
    for m in ("fid", "sfid", "prec"):
        assert two["metrics"][m] == one["metrics"][m], m
    assert [ln.startswith("FID: ") for ln in run.stdout.splitlines()] == [True]  # one result line, rank 0 alone
    # the cache entry of the samples was written once, by rank 0, and a one-process run reads it
    entries = [json.loads(p.read_text()) for p in (cache / "features").glob("*-index.json")]
    assert [e["n"] for e in entries].count(10) == 1 and "pool" in next(e for e in entries if e["n"] == 10)["files"]
    again = python(
        "-m",
        "harness",
        *args,
        "--out",
        str(tmp_path / "again"),
        cwd=tmp_path,
        extra_env={"ALITOK_BENCH_CACHE": str(cache)},
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (again,) = (tmp_path / "again").glob("eval_record*.json")
    again = json.loads(again.read_text())
    for m in ("fid", "sfid", "prec"):
        assert again["metrics"][m] == one["metrics"][m], m
