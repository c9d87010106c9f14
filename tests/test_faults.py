"""Faults injected on purpose: each ends in the right result or a one-line error with exit 2, never a
wrong number with exit 0 (issue 8). A stub extractor (fixed projection, real code paths around it)
keeps these fast; the metric functions themselves are checked against references elsewhere."""

import errno
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import HANG_GUARD_S

from harness import cli
from harness.core.errors import InputFileError, UserError
from harness.core.interfaces import Generator, NoSampling
from harness.core.locks import FolderInUse
from harness.data.npz import save_samples_npz
from harness.metrics import evaluate as evaluate_mod
from harness.metrics import inception as inception_mod
from harness.metrics.evaluate import EvalOptions, evaluate_samples
from harness.metrics.inception import InceptionExtractor
from harness.metrics.refstats import build_reference_from_images, load_reference, sidecar_path
from harness.metrics.weights import WeightsInfo
from harness.runs.specs import ModelSpec, ProtocolSpec, RunSpec
from harness.sampling import shards
from harness.sampling.runner import sample

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


class StubExtractor(InceptionExtractor):
    """Features = a fixed ReLU projection of the pixels; ``seed`` changes the "weights" (and their sha256)."""

    calls = 0

    def __init__(self, weights=None, device="cpu", seed=0):
        seed = int(str(getattr(weights, "spec", weights) or f"stub:{seed}").split(":")[-1]) if weights else seed
        self.weights = WeightsInfo(f"stub:{seed}", "random", Path("stub"), f"{seed:x}" * 64, has_logits=True)
        self.device, self.channels_last = torch.device("cpu"), False
        rng = np.random.default_rng(seed)
        self.proj = {
            k: rng.standard_normal((48, d)).astype(np.float32) / 7
            for k, d in (("pool", 12), ("spatial", 10), ("logits", 16))
        }

    def __call__(self, images):
        type(self).calls += 1
        x = np.asarray(images, np.float32).reshape(len(images), -1)[:, :48] / 255.0
        return {k: (np.maximum(x @ w, 0) if k != "logits" else x @ w) for k, w in self.proj.items()}


def stub_weights(spec, *a, **k):
    return StubExtractor(spec).weights


@pytest.fixture
def stub(monkeypatch):
    """The CLI resolves --inception stub:N to the stub (evaluate and ref-stats build)."""
    monkeypatch.setattr(evaluate_mod, "resolve_weights", stub_weights)
    monkeypatch.setattr(evaluate_mod, "InceptionExtractor", StubExtractor)
    monkeypatch.setattr(inception_mod, "InceptionExtractor", StubExtractor)
    StubExtractor.calls = 0
    return StubExtractor


def images(n, seed, size=8):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture
def world(tmp_path, stub):  # noqa: V107 (the stub fixture patches the extractor)
    cache = tmp_path / "cache"
    s = save_samples_npz(tmp_path / "s.npz", images(40, 1), np.arange(40) % 4)
    ref = build_reference_from_images(
        images(30, 2), tmp_path / "ref.npz", inception=StubExtractor(), cache=cache, progress=False
    )
    return dict(root=tmp_path, cache=cache, samples=s, ref=ref)


def one_line_exit_2(capsys, argv, *needles):
    rc = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.count("\n") == 0 and err.startswith("alitok-bench"), err
    for n in needles:
        assert n in err, err
    return err


# ---------------------------------------------------------------------------------------------- cache
def test_corrupted_feature_cache_is_recomputed_and_reported(world, capsys):
    kw = dict(metrics=("fid", "sfid", "prec"), inception=StubExtractor(), cache=world["cache"])
    truth = evaluate_samples(world["samples"], world["ref"], EvalOptions(**{**kw, "cache": False})).metrics
    first = evaluate_samples(world["samples"], world["ref"], EvalOptions(**kw))
    assert first.metrics == pytest.approx(truth, rel=1e-12)
    for member in ("pool.npy", "stats.npz"):
        for p in (world["cache"] / "features").glob(f"*{member}"):
            data = bytearray(p.read_bytes())
            data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # zero a block, as the tester did
            p.write_bytes(bytes(data))
        again = evaluate_samples(world["samples"], world["ref"], EvalOptions(**kw))
        assert again.metrics == pytest.approx(truth, rel=1e-12)
        assert any("damaged" in w and "recomputed" in w for w in again.warnings)
    assert "damaged" in capsys.readouterr().err


def test_cache_out_of_space_still_gives_metrics(world, monkeypatch):
    real_save = np.save

    def full(f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    res = evaluate_samples(
        world["samples"],
        world["ref"],
        EvalOptions(metrics=("fid", "prec"), inception=StubExtractor(), cache=world["root"] / "other-cache"),
    )
    monkeypatch.setattr(np, "save", real_save)
    truth = evaluate_samples(
        world["samples"], world["ref"], EvalOptions(metrics=("fid", "prec"), inception=StubExtractor(), cache=False)
    )
    assert res.metrics == truth.metrics
    assert any("feature cache not written" in w and "No space left" in w for w in res.warnings)
    assert not list((world["root"] / "other-cache" / "features").glob(".*.tmp"))


def test_stale_cache_temps_removed_under_the_lock(world):
    d = world["cache"] / "features"
    stale = d / ".v2-dead.npy.abc.npy.tmp"
    stale.write_bytes(b"x")
    fresh = save_samples_npz(world["root"] / "fresh.npz", images(20, 9))  # a cache miss: an entry is written
    evaluate_samples(
        fresh, world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=world["cache"])
    )
    assert not stale.exists()


def test_cache_list_and_clear(world, monkeypatch, capsys):
    monkeypatch.setenv("ALITOK_BENCH_CACHE", str(world["cache"]))
    evaluate_samples(
        world["samples"], world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=world["cache"])
    )
    assert cli.main(["cache", "list", "--json", "--verify"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # the reference build's input array, the reference file (seeded, same features) and the samples
    assert doc["cache"] == str(world["cache"]) and len(doc["entries"]) == 3
    assert all(e["intact"] for e in doc["entries"])
    assert cli.main(["cache", "clear"]) == 0
    capsys.readouterr()
    assert not list((world["cache"] / "features").glob("v*"))


# ---------------------------------------------------------------------------------------------- references
def test_kill_between_reference_writes_never_gives_a_number(world, monkeypatch, capsys):
    ref = world["ref"]
    real_replace = os.replace

    def killed(src, dst):
        if Path(dst) == ref:
            raise KeyboardInterrupt  # the process dies after the sidecar landed, before the npz
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):  # rebuild with other weights: its sidecar lands, its npz does not
        build_reference_from_images(images(30, 3), ref, inception=StubExtractor(seed=7), cache=False, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    with pytest.raises(InputFileError, match="describes a different file"):
        load_reference(ref)
    one_line_exit_2(
        capsys,
        [
            "eval",
            str(world["samples"]),
            str(ref),
            "--inception",
            "stub:7",
            "--metrics",
            "fid",
            "--out",
            str(world["root"] / "o"),
        ],
        "interrupted build",
    )


def test_rebuild_after_a_kill_cleans_temps_and_recovers(world):
    ref = world["ref"]
    stale = ref.with_name(f".{ref.name}.killed.npz.tmp")  # what SIGKILL leaves beside a reference
    stale.write_bytes(b"half")
    unrelated = ref.with_name(".other.npz.x.tmp")  # another reference's build: not ours to delete
    unrelated.write_bytes(b"x")
    build_reference_from_images(images(30, 3), ref, inception=StubExtractor(seed=7), cache=False, progress=False)
    assert not stale.exists() and unrelated.exists()
    assert load_reference(ref).metadata["weights"]["spec"] == "stub:7"


def test_reference_without_its_sidecar_keeps_its_metadata(world, capsys):
    sidecar_path(world["ref"]).unlink()  # lost: the metadata inside the npz still names the weights
    assert load_reference(world["ref"]).metadata["weights"]["spec"] == "stub:0"
    one_line_exit_2(
        capsys,
        [
            "eval",
            str(world["samples"]),
            str(world["ref"]),
            "--inception",
            "stub:9",
            "--metrics",
            "fid",
            "--out",
            str(world["root"] / "o"),
        ],
        "Inception weights",
    )


def _npz_with_header(path, arrays, fake):
    """An npz whose member ``fake`` (name -> (shape, dtype)) has a header claiming that shape, and 8 data bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for k, a in arrays.items():
            with z.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array(f, a)
        for k, (shape, dtype) in fake.items():
            with z.open(f"{k}.npy", "w") as f:
                np.lib.format.write_array_header_1_0(
                    f, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
                )
                f.write(bytes(8))
    return path


def test_oversized_headers_are_refused_before_loading(world, capsys):
    imgs = images(6, 4)
    bad_labels = _npz_with_header(world["root"] / "bad_labels.npz", {"arr_0": imgs}, {"labels": ((10**12,), np.int64)})
    one_line_exit_2(
        capsys,
        [
            "eval",
            str(bad_labels),
            str(world["ref"]),
            "--inception",
            "stub:0",
            "--metrics",
            "fid",
            "--out",
            str(world["root"] / "o"),
        ],
        "bad_labels.npz",
        "labels header claims",
    )
    bad_ref = _npz_with_header(
        world["root"] / "bad_ref.npz", {"mu": np.zeros(10**6)}, {"sigma": ((10**6, 10**6), np.float64)}
    )
    one_line_exit_2(capsys, ["ref-stats", "verify", str(bad_ref)], "bad_ref.npz", "D <= 65536")
    bad_ref2 = _npz_with_header(
        world["root"] / "bad_ref2.npz", {"mu": np.zeros(12)}, {"sigma": ((10**6, 10**6), np.float64)}
    )
    one_line_exit_2(capsys, ["ref-stats", "verify", str(bad_ref2)], "sigma header has shape")


def test_bad_crc_fails_before_extraction(world, capsys):
    p = world["root"] / "crc.npz"
    save_samples_npz(p, images(40, 1), np.arange(40) % 4)
    data = bytearray(p.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside arr_0's stored bytes: only the CRC can tell
    p.write_bytes(bytes(data))
    StubExtractor.calls = 0
    one_line_exit_2(
        capsys,
        [
            "eval",
            str(p),
            str(world["ref"]),
            "--inception",
            "stub:0",
            "--metrics",
            "fid",
            "--no-cache",
            "--out",
            str(world["root"] / "o"),
        ],
        "crc.npz",
        "arr_0",
    )
    assert StubExtractor.calls == 0


# ---------------------------------------------------------------------------------------------- output paths
def test_output_paths_checked_before_work(world, capsys):
    a_file = world["root"] / "a_file"
    a_file.write_text("x")
    StubExtractor.calls = 0
    base = ["eval", str(world["samples"]), str(world["ref"]), "--inception", "stub:0", "--metrics", "fid"]
    one_line_exit_2(capsys, base + ["--out", str(a_file)], "is a file")
    one_line_exit_2(capsys, base + ["--out", str(a_file / "sub")], "which is a file")
    one_line_exit_2(
        capsys,
        ["ref-stats", "build", str(world["samples"]), "--out", str(world["root"]), "--inception", "stub:0"],
        "is a folder",
    )
    assert StubExtractor.calls == 0  # refused before any extraction
    with pytest.raises(UserError, match="is a file"):
        sample(_spec(), a_file, device="cpu", progress=False, generator=NoiseGenerator())


# ---------------------------------------------------------------------------------------------- sampling folders
class NoiseGenerator(Generator):
    name = "test-noise"
    sampling_cls = NoSampling
    quantization = "truncate"
    num_classes, image_size = 4, 8

    def generate(self, labels, generator, params=None):
        labels = self.check_labels(labels)
        return torch.randint(0, 256, (labels.numel(), 8, 8, 3), generator=generator, dtype=torch.uint8)


def _spec(n=40, **proto):
    return RunSpec(
        ModelSpec("test-noise"),
        ProtocolSpec(**{**dict(name="t", num_samples=n, num_classes=4, image_size=8, chunk_size=5), **proto}),
    )


def test_incomplete_folder_refused_or_prefix_recorded(world, capsys):
    out = world["root"] / "run"
    sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator())
    full = evaluate_samples(out, world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False))
    npz = evaluate_samples(
        out / "samples.npz", world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False)
    )
    assert full.metrics["fid"] == pytest.approx(npz.metrics["fid"], rel=1e-12)
    assert full.provenance["samples"]["labels"]  # the shards' labels are read (issue 7: "no labels")
    for k in (3, 6, 7):
        shards.shard_path(out, k).unlink()
    one_line_exit_2(
        capsys,
        ["eval", str(out), str(world["ref"]), "--inception", "stub:0", "--metrics", "fid", "--no-cache"],
        "incomplete: 5 of 8 chunks",
        "--allow-partial",
    )
    part = evaluate_samples(
        out, world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False, allow_partial=True)
    )
    prefix = save_samples_npz(world["root"] / "prefix.npz", np.load(out / "samples.npz")["arr_0"][:15])
    truth = evaluate_samples(
        prefix, world["ref"], EvalOptions(metrics=("fid",), inception=StubExtractor(), cache=False)
    )
    assert part.provenance["samples"]["n"] == 15 and part.metrics["fid"] == pytest.approx(
        truth.metrics["fid"], rel=1e-12
    )
    assert part.provenance["samples"]["selection"]["partial"] and any("PARTIAL" in w for w in part.warnings)
    assert not part.paper_comparable


def test_second_job_on_a_folder_gets_one_line_then_waits(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    other_tmp = out / ".spec.json.inflight.tmp"  # the other job's in-flight write
    other_tmp.write_bytes(b"partial")
    # the holder keeps the lock until the gate file exists (not for a fixed time a loaded machine may outlast)
    gate = tmp_path / "release"
    code = (
        "import os, sys, time; from harness.core.locks import acquire; l = acquire(sys.argv[1]); "
        "print('held', flush=True)\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.05)"
    )
    holder = subprocess.Popen(
        [PY, "-c", code, str(out), str(gate)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    release = threading.Timer(0.5, gate.touch)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match=f"in use by PID {holder.pid}"):
            sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator())
        assert other_tmp.exists()  # never deleted while another job holds the folder
        t0 = time.time()
        release.start()  # the holder lets go 0.5 s from now; the waiting sampler then takes the folder
        res = sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator(), wait=True)
    finally:
        gate.touch()
        holder.wait(timeout=HANG_GUARD_S)
    assert res.gathered["num_samples"] == 40 and time.time() - t0 > 0.5
    assert not other_tmp.exists()  # stale once the lock is ours: removed


def test_two_concurrent_cli_samplers(tmp_path):
    out, gate = tmp_path / "run", tmp_path / "gate"
    args = [
        "-m",
        "harness",
        "sample",
        "--model",
        "real-data",
        "--protocol",
        "demo",
        "--num-samples",
        "44",
        "--chunk-size",
        "4",
        "--set",
        "model.options.per_class=8",
        "--no-progress",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    # the first sampler holds after each chunk until the gate exists: the second starts while it runs, however
    # slowly a loaded machine starts a Python process (a fixed per-chunk delay raced against that start-up)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ALITOK_BENCH_TEST_CHUNK_GATE": str(gate), "PYTHONPATH": str(REPO)}
    first = subprocess.Popen([PY, *args], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while first.poll() is None and not list((out / "shards").glob("chunk_*.npz")):
            time.sleep(0.05)
        second = subprocess.run([PY, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    finally:
        gate.touch()
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"in use by PID {first.pid}" in second.stderr
    _, err = first.communicate(timeout=HANG_GUARD_S)
    assert first.returncode == 0, err  # the first was not disturbed
    with np.load(out / "samples.npz") as z:
        assert z["arr_0"].shape[0] == 44


def test_bad_manifest_types_are_skipped_and_redone(tmp_path):
    out = tmp_path / "run"
    gen = NoiseGenerator()
    sample(_spec(), out, device="cpu", progress=False, generator=gen)
    first = (out / "samples.npz").read_bytes()
    lines = (out / "manifest.jsonl").read_text().splitlines()
    e1, e2 = json.loads(lines[1]), json.loads(lines[2])
    lines[1] = json.dumps({**e1, "chunk": "x"})
    lines[2] = json.dumps(e2).replace(f'"count": {e2["count"]}', '"count": 1e400')
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    res = sample(_spec(), out, device="cpu", progress=False, generator=gen)
    assert res.chunks_run == 2 and (out / "samples.npz").read_bytes() == first


def test_manifest_keeps_every_verified_chunk_and_speed_survives_resume(tmp_path):
    out = tmp_path / "run"
    gen = NoiseGenerator()
    big = sample(_spec(40), out, device="cpu", progress=False, generator=gen)
    small = sample(_spec(10), out, device="cpu", progress=False, generator=gen)
    assert small.chunks_run == 0 and small.gathered["num_samples"] == 10
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 8  # the other 6 chunks are kept
    again = sample(_spec(40), out, device="cpu", progress=False, generator=gen)
    assert again.chunks_run == 0 and again.chunks_skipped == 8
    assert again.images_per_s is not None and again.images_per_s > 0  # from the manifest's per-chunk timings
    t = again.gathered["throughput"]
    assert t["chunks_timed"] == 8 and t["images_timed"] == 40
    cond = t["conditions"][0]
    assert cond["torch_threads"] == torch.get_num_threads() and "loadavg_1m_at_start" in cond
    assert big.gathered["throughput"]["images_per_s"] == pytest.approx(again.gathered["throughput"]["images_per_s"])


def test_disk_full_while_writing_shards_and_samples(tmp_path, monkeypatch, capsys):
    from harness.core.errors import one_line
    from harness.data import npz as npz_mod

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_fsync, calls = os.fsync, []

    def full_after_spec(fd):  # spec.json lands, then the disk fills while shard 0 is flushed
        calls.append(fd)
        return real_fsync(fd) if len(calls) == 1 else full()

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_after_spec)
        with pytest.raises(OSError) as e:
            sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator())
    assert e.value.filename.endswith("chunk_00000.npz") and e.value.errno == errno.ENOSPC
    assert one_line(e.value) == f"{e.value.filename}: No space left on device"
    assert not list((out / "shards").glob(".*.tmp"))
    sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator())
    (out / "samples.npz").unlink()
    with monkeypatch.context() as m:  # ... or while samples.npz is written
        m.setattr(npz_mod.NpzWriter, "write_rows", full)
        with pytest.raises(OSError) as e:
            sample(_spec(), out, device="cpu", progress=False, generator=NoiseGenerator())
    assert e.value.filename.endswith("samples.npz") and not (out / "samples.npz").exists()


def test_legacy_seed_overflow_names_the_seed():
    from harness.sampling.plan import SamplingPlan

    p = ProtocolSpec(
        name="t",
        num_samples=16,
        num_classes=4,
        image_size=8,
        seed=2**64 - 2,
        seed_scheme="legacy_rank",
        legacy_world_size=4,
        legacy_batch_size=2,
    )
    with pytest.raises(UserError, match=r"protocol.seed 18446744073709551614: .* range 0..18446744073709551615"):
        SamplingPlan(p, "h")


# ---------------------------------------------------------------------------------------------- CLI shapes
def test_eval_image_folders_and_json(world, capsys):
    from PIL import Image

    a, b = world["root"] / "A", world["root"] / "B"
    for d, imgs in ((a, images(20, 5)), (b, images(30, 2))):
        d.mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray(im).save(d / f"{i:03d}.png")
    rc = cli.main(
        [
            "eval",
            str(a),
            str(b),
            "--inception",
            "stub:0",
            "--metrics",
            "fid,prec",
            "--json",
            "--out",
            str(world["root"] / "o"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    doc = json.loads(captured.out)  # the whole of stdout is one JSON document
    npz_a = save_samples_npz(world["root"] / "a.npz", images(20, 5))
    truth = evaluate_samples(
        npz_a, world["ref"], EvalOptions(metrics=("fid", "prec"), inception=StubExtractor(), cache=False)
    )
    assert doc["metrics"]["fid"] == pytest.approx(truth.metrics["fid"], rel=1e-9)  # B's PNGs = the ref's images
    assert doc["metrics"]["prec"] == truth.metrics["prec"]
    assert cli.main(["ref-stats", "verify", str(world["ref"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
