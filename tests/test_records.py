"""Run records: JSON round trip, atomic writes, the pandas index, code provenance."""
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from harness.records import RunRecord, git_info, load_records, sha256_file, write_record

REPO = Path(__file__).resolve().parent.parent


def test_write_and_load_records_as_dataframe(tmp_path):
    a = RunRecord(kind="sample", spec={"protocol": {"name": "demo"}}, spec_hash="abc123",
                  model={"name": "real-data"}, metrics={"fid": 12.5, "is": None}, samples={"n": 220})
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
