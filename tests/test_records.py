"""Run records: JSON round trip, atomic writes, the pandas index, code provenance."""

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from harness.runs.records import RunRecord, git_info, load_records, sha256_file, write_record

REPO = Path(__file__).resolve().parent.parent


def test_write_and_load_records_as_dataframe(tmp_path):
    a = RunRecord(
        kind="sample",
        spec={"protocol": {"name": "demo"}},
        spec_hash="abc123",
        model={"name": "real-data"},
        metrics={"fid": 12.5, "is": None},
        samples={"n": 220},
    )
    b = RunRecord(kind="eval", model={"name": "alitok-tiny"}, metrics={"fid": 30.0}, status="partial")
    pa = write_record(a, tmp_path / "x")
    write_record(b, tmp_path / "y" / "deeper")
    assert json.loads(pa.read_text())["run_id"] == a.run_id and a.run_id != b.run_id
    assert not list(tmp_path.rglob(".*.tmp"))
    df = load_records(tmp_path)
    assert len(df) == 2
    row = df.set_index("model.name").loc["real-data"]
    assert row["metrics.fid"] == 12.5 and row["samples.n"] == 220 and row["kind"] == "sample"
    assert df.set_index("model.name").loc["alitok-tiny", "status"] == "partial"


def test_record_rejects_unknown_kind_and_status():
    with pytest.raises(ValueError, match="kind"):
        RunRecord(kind="nonsense")
    with pytest.raises(ValueError, match="status"):
        RunRecord(kind="run", status="great")


def test_record_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_record(RunRecord(kind="eval", metrics={"fid": float("nan")}), tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_sha256_file_matches_hashlib(tmp_path):
    p = tmp_path / "blob"
    p.write_bytes(bytes(range(256)) * 20000)  # more than one 4 MiB read block
    assert sha256_file(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    p.write_bytes(b"changed")  # the memo is keyed on size and mtime: a rewritten file is rehashed
    assert sha256_file(p) == hashlib.sha256(b"changed").hexdigest()


def test_git_info_matches_git():
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    info = git_info(REPO)
    if head.returncode != 0:
        assert info["git_sha"] is None
    else:
        assert info["git_sha"] == head.stdout.strip() and isinstance(info["dirty"], bool)


def test_git_info_outside_a_checkout(tmp_path):
    assert git_info(tmp_path) == {"git_sha": None, "dirty": None}


def test_committed_results_load_as_one_dataframe():
    from harness.runs.records import KINDS

    files = sorted((REPO / "results").rglob("*record*.json"))
    df = load_records(REPO / "results")
    assert len(files) >= 3 and len(df) == len(files)
    assert set(df["kind"]) <= set(KINDS) and df["run_id"].notna().all() and df["created_at"].notna().all()
    assert sorted(df["record_path"]) == sorted(map(str, files))


def test_record_names():
    from harness.runs.records import eval_record_name, record_name

    assert record_name("recon") == "recon_record.json"
    base = eval_record_name("alitok-tiny", "r" * 64, "w" * 64, ["fid", "is"])
    assert base.startswith("eval_record-alitok-tiny-") and base.endswith(".json")
    assert eval_record_name("alitok-tiny", "r" * 64, "w" * 64, ["is", "fid"]) == base  # order does not matter
    others = {
        eval_record_name("alitok-tiny", "s" * 64, "w" * 64, ["fid", "is"]),
        eval_record_name("alitok-tiny", "r" * 64, "v" * 64, ["fid", "is"]),
        eval_record_name("alitok-tiny", "r" * 64, "w" * 64, ["fid"]),
    }
    assert len(others) == 3 and base not in others
    assert record_name("eval", "a/b c", {"x": 1}).startswith("eval_record-a_b_c-")
    with pytest.raises(ValueError, match="record"):
        write_record(RunRecord(kind="eval"), REPO, "notes.json")


def test_eval_records_are_named_after_the_sampling_model_and_added_per_reference(tmp_path, monkeypatch, capsys):
    import numpy as np

    from harness.cli import main
    from harness.data.npz import save_samples_npz

    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    samples = save_samples_npz(run / "samples.npz", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
    write_record(RunRecord(kind="sample", model={"name": "toy-gen"}), run)
    refs = []
    for i in (1, 2):
        src = save_samples_npz(tmp_path / f"real{i}.npz", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
        refs.append(tmp_path / f"ref{i}.npz")
        assert (
            main(["ref-stats", "build", str(src), "--out", str(refs[-1]), "--inception", "random:0", "--device", "cpu"])
            == 0
        )
    for ref in (refs[0], refs[1], refs[0]):  # the third repeats the first: same name, replaced
        assert (
            main(
                [
                    "eval",
                    str(samples),
                    "--ref",
                    str(ref),
                    "--metrics",
                    "fid",
                    "--inception",
                    "random:0",
                    "--device",
                    "cpu",
                ]
            )
            == 0
        )
    evals = sorted(run.glob("eval_record*.json"))
    assert len(evals) == 2 and all(p.name.startswith("eval_record-toy-gen-") for p in evals)
    df = load_records(run)
    assert sorted(df["kind"]) == ["eval", "eval", "sample"]
    assert set(df.loc[df["kind"] == "eval", "model.name"]) == {"toy-gen"}
    assert df.loc[df["kind"] == "eval", "metric_provenance.reference.path"].nunique() == 2


def test_dirty_means_the_code_not_the_results(tmp_path):
    """Regenerating a committed result in place (``run golden --out results/golden``) rewrites its folder
    before the record is written: that made every regenerated golden record say dirty: true."""
    import subprocess

    def git(*a):
        subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "results" / "r.json").write_text('{"fid": 1}')
    assert git_info(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_info(tmp_path)["dirty"] is True
