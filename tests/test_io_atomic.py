"""Atomic writes: the file and its folder reach the disk, and a failed write changes nothing.

Every atomic writer in the project (records, npz, safetensors checkpoints, cached Inception weights,
the AR sample grid) goes through ``harness.core.io``; these tests pin the durability that promises."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from harness.core import io
from harness.core.io import atomic_path, atomic_target, write_text_atomic


@pytest.fixture
def synced(monkeypatch):
    """Record what each os.fsync call synced: the resolved path behind the fd, or the folder."""
    seen: list[Path] = []
    real = os.fsync

    def spy(fd):
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd targets from /proc")


@needs_proc
@pytest.mark.parametrize(
    "write",
    [
        lambda p: write_text_atomic(p, "new\n"),
        lambda p: _via_target(p),
    ],
)
def test_file_then_folder_are_fsynced(tmp_path, synced, write):
    target = tmp_path / "out.json"
    write(target)
    assert target.read_text() == "new\n"
    # the temp file (a sibling of the target) first, then the folder holding the rename
    assert len(synced) == 2, synced
    assert synced[0].parent == tmp_path.resolve() and synced[0].name.startswith(".out.json.")
    assert synced[1] == tmp_path.resolve()


def _via_target(p: Path) -> None:
    with atomic_target(p) as tmp:
        tmp.write_text("new\n")


@pytest.mark.parametrize("opener", ["path", "target"])
def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path, opener):
    target = tmp_path / "out.json"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk died"):
        if opener == "path":
            with atomic_path(target, "w") as f:
                f.write("half of the new")
                raise RuntimeError("disk died")
        else:
            with atomic_target(target) as tmp:
                tmp.write_text("half of the new")
                raise RuntimeError("disk died")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


@needs_proc
def test_folder_fsync_refused_is_skipped(tmp_path, monkeypatch):
    """Platforms that cannot fsync a directory (EINVAL) still get the write."""
    real = os.fsync

    def refuse_dirs(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            raise OSError(22, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(os, "fsync", refuse_dirs)
    write_text_atomic(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").read_text() == "x"


@needs_proc
def test_project_writers_use_the_durable_path(tmp_path, synced):
    """The former private copies (checkpoint, cached weights) now sync their folder too."""
    from harness.metrics.weights import _save_atomic
    from harness.nn.checkpoints.checkpoint import save_safetensors

    save_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(2)})
    _save_atomic({"w": torch.ones(2)}, tmp_path / "w.pth")
    assert synced.count(tmp_path.resolve()) == 2, synced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "w.pth"]
    assert oct(os.stat(tmp_path / "m.safetensors").st_mode & 0o777) == oct(0o666 & ~io._UMASK)


def test_every_cache_user_takes_the_one_cache_folder(tmp_path, monkeypatch):
    """Converted weights, kernel choices and fetched files all live under io.cache_root(): the variable
    moves them together, and without it they share ~/.cache/alitok-bench."""
    from harness.fetch.store import weights_root
    from harness.metrics.weights import cache_dir
    from harness.nn.kernels.kernel_choice import cache_file

    monkeypatch.delenv("ALITOK_BENCH_WEIGHTS", raising=False)
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(tmp_path / "c"))
    assert cache_dir() == cache_file().parent == weights_root().parent == tmp_path / "c"
    monkeypatch.delenv("ALITOK_BENCH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home_cache = tmp_path / "home" / ".cache" / "alitok-bench"
    assert io.cache_root() == cache_file().parent == weights_root().parent == home_cache
