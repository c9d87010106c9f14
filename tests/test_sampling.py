"""Sampling plan, legacy_rank layout and seeds, 1 vs 2 processes, SIGKILL + resume."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runs import python, sample_killed_midway, sample_one_and_two_processes

from harness.core.interfaces import Generator, NoSampling
from harness.core.io import sha256_bytes
from harness.runs.protocols import get_protocol
from harness.runs.specs import ModelSpec, ProtocolSpec, RunSpec, sampling_identity_hash
from harness.sampling import shards
from harness.sampling.plan import SamplingPlan
from harness.sampling.runner import sample

REPO = Path(__file__).resolve().parent.parent


class NoiseGenerator(Generator):
    """Each image is one colour drawn from the passed generator: the output records the RNG stream."""

    name = "test-noise"
    sampling_cls = NoSampling
    quantization = "truncate"

    def __init__(self, num_classes=10, image_size=4):
        self.num_classes, self.image_size = num_classes, image_size

    def generate(self, labels, generator, params=None):
        labels = self.check_labels(labels)
        colour = torch.randint(0, 256, (labels.numel(), 1, 1, 3), generator=generator, dtype=torch.uint8)
        return colour.expand(-1, self.image_size, self.image_size, 3).contiguous()


def _spec(**proto):
    base = dict(name="t", num_samples=40, num_classes=10, image_size=4, chunk_size=6)
    return RunSpec(ModelSpec("test-noise"), ProtocolSpec(**{**base, **proto}))


# ---------------------------------------------------------------------------------------------- plan
def test_chunk_plan_labels_cover_and_prefix_property():
    p = get_protocol("imagenet256-gfid50k")
    small = dataclasses.replace(p, num_samples=5000)
    big_plan, small_plan = SamplingPlan(p, "h"), SamplingPlan(small, "h")
    labels = big_plan.labels()
    assert np.array_equal(labels, np.arange(50_000) % 1000)
    assert np.array_equal(np.bincount(labels), np.full(1000, 50))
    seen = np.concatenate([big_plan.chunk(k).indices for k in range(big_plan.num_chunks)])
    assert np.array_equal(np.sort(seen), np.arange(50_000))
    # the 5k run is the first 5k of the 50k run: same chunks, same seeds, same identity
    for k in range(small_plan.num_chunks):
        a, b = small_plan.chunk(k), big_plan.chunk(k)
        assert np.array_equal(a.indices, b.indices) and small_plan.seed_for(a) == big_plan.seed_for(b)
    spec_a, spec_b = RunSpec(ModelSpec("m"), p), RunSpec(ModelSpec("m"), dataclasses.replace(small, name="other"))
    assert sampling_identity_hash(spec_a, NoSampling(), "truncate") == sampling_identity_hash(
        spec_b, NoSampling(), "truncate"
    )
    spec_c = RunSpec(ModelSpec("m"), dataclasses.replace(p, seed=1))
    assert sampling_identity_hash(spec_a, NoSampling(), "truncate") != sampling_identity_hash(
        spec_c, NoSampling(), "truncate"
    )


def test_round_robin_assignment_partitions_chunks():
    plan = SamplingPlan(_spec().protocol, "h")
    for world in (1, 2, 3):
        parts = [plan.chunks_for_rank(r, world) for r in range(world)]
        assert sorted(sum(parts, [])) == list(range(plan.num_chunks))
        assert all(k % world == r for r, ks in enumerate(parts) for k in ks)


def _upstream_layout(num_classes, n_total, world, batch, seed):
    """The official sample_imagenet.py loop, written out: labels per output index, seed per rank."""
    labels = {}
    for rank in range(world):
        all_classes = list(range(num_classes)) * (n_total // num_classes)
        subset = all_classes[rank * n_total // world : (rank + 1) * n_total // world]
        total = 0
        for t in range(len(subset) // batch):
            for j, lab in enumerate(subset[t * batch : (t + 1) * batch]):
                labels[j * world + rank + total] = lab
            total += world * batch
    return np.array([labels[i] for i in range(n_total)]), [seed + r for r in range(world)]


@pytest.mark.parametrize("num_classes, n, world, batch, seed", [(1000, 50_000, 8, 125, 42), (10, 120, 4, 5, 3)])
def test_legacy_rank_label_layout_and_seeds(num_classes, n, world, batch, seed):
    proto = ProtocolSpec(
        "t", n, num_classes, 4, seed=seed, seed_scheme="legacy_rank", legacy_world_size=world, legacy_batch_size=batch
    )
    plan = SamplingPlan(proto, "h")
    want_labels, want_seeds = _upstream_layout(num_classes, n, world, batch, seed)
    assert np.array_equal(plan.labels(), want_labels)
    firsts = [plan.chunk(k) for k in range(plan.num_chunks) if plan.chunk(k).step == 0]
    assert [plan.seed_for(c) for c in firsts] == want_seeds


def _legacy_expected_images(spec):
    """Independent replay: rank r draws from one generator seeded seed+r, batch after batch."""
    p = spec.protocol
    W, n = p.legacy_world_size, p.legacy_batch_size
    labels, seeds = _upstream_layout(p.num_classes, p.num_samples, W, n, p.seed)
    g = NoiseGenerator(p.num_classes, p.image_size)
    out = np.zeros((p.num_samples, p.image_size, p.image_size, 3), np.uint8)
    for r in range(W):
        rng = torch.Generator().manual_seed(seeds[r])
        for t in range(p.num_samples // (W * n)):
            idx = t * W * n + np.arange(n) * W + r
            out[idx] = g.generate(torch.from_numpy(labels[idx]), rng).numpy()
    return out, labels


def test_legacy_rank_sampling_and_resume_mid_stream(tmp_path):
    spec = _spec(num_samples=80, seed=5, seed_scheme="legacy_rank", legacy_world_size=4, legacy_batch_size=5)
    gen = NoiseGenerator()
    res = sample(spec, tmp_path / "a", device="cpu", progress=False, generator=gen)
    want, want_labels = _legacy_expected_images(spec)
    with np.load(res.gathered["path"]) as z:
        assert np.array_equal(z["arr_0"], want) and np.array_equal(z["labels"], want_labels)
    first = (tmp_path / "a" / "samples.npz").read_bytes()
    # drop the middle of rank 1's stream (steps 1..2 of 4): resume must continue its RNG from step 0's state
    plan = res.resolved.plan
    for k in (plan.steps + 1, plan.steps + 2):
        shards.shard_path(tmp_path / "a", k).unlink()
    res2 = sample(spec, tmp_path / "a", device="cpu", progress=False, generator=gen)
    assert res2.chunks_run == 2 and res2.chunks_skipped == plan.num_chunks - 2
    assert (tmp_path / "a" / "samples.npz").read_bytes() == first


def test_corrupted_shard_is_redone_and_manifest_complete(tmp_path):
    spec, gen = _spec(), NoiseGenerator()
    out = tmp_path / "run"
    sample(spec, out, device="cpu", progress=False, generator=gen)
    first = (out / "samples.npz").read_bytes()
    p = shards.shard_path(out, 3)
    p.write_bytes(p.read_bytes()[:-10] + b"0123456789")  # same size, wrong bytes
    res = sample(spec, out, device="cpu", progress=False, generator=gen)
    assert res.chunks_run == 1 and (out / "samples.npz").read_bytes() == first
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["chunk"] for line in lines] == list(range(res.chunks_total))


# ---------------------------------------------------------------------------------------------- processes


SAMPLE_ARGS = [
    "--model",
    "real-data",
    "--protocol",
    "demo",
    "--num-samples",
    "66",
    "--chunk-size",
    "7",
    "--set",
    "model.options.per_class=20",
    "--no-progress",
    "--device",
    "cpu",
]


def test_one_vs_two_gloo_processes_byte_identical(tmp_path):
    sample_one_and_two_processes(SAMPLE_ARGS, tmp_path)
    with np.load(tmp_path / "two" / "samples.npz") as z:
        assert z["arr_0"].shape == (66, 32, 32, 3) and np.array_equal(z["labels"], np.arange(66) % 11)


def test_sigkill_midway_then_resume_byte_identical(tmp_path):
    ref = python("-m", "harness", "sample", *SAMPLE_ARGS, "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    done_before = sample_killed_midway(SAMPLE_ARGS, out)
    assert 3 <= done_before < 10 and not (out / "samples.npz").exists()
    again = python("-m", "harness", "sample", *SAMPLE_ARGS, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert f"{done_before} reused" in again.stdout or f"{done_before - 1} reused" in again.stdout
    assert (out / "samples.npz").read_bytes() == (tmp_path / "ref" / "samples.npz").read_bytes()
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 10 and not list((out / "shards").glob(".*.tmp"))


def test_numerics_that_change_pixels_are_part_of_the_identity(tmp_path):
    """Device type (CPU and CUDA generators draw different streams), dtype and CUDA TF32 change the
    pixels, so they change the identity hash; TF32 off CUDA and the process count do not."""
    from harness.core.interfaces import NoSampling
    from harness.runs.protocols import get_protocol
    from harness.runs.specs import ModelSpec, RunSpec, numerics, sampling_identity_hash

    spec = RunSpec(ModelSpec("real-data"), get_protocol("demo"))
    h = lambda rt: sampling_identity_hash(spec, NoSampling(), "truncate", {}, rt)  # noqa: E731
    base = h(numerics("cpu", "fp32", False))
    assert h(None) == base  # default = CPU fp32
    assert h(numerics("cpu", "fp32", True)) == base
    assert h(numerics("cpu", "float32", False)) == base
    assert (
        len(
            {
                base,
                h(numerics("cuda", "fp32", False)),
                h(numerics("cuda", "fp32", True)),
                h(numerics("cpu", "bf16", False)),
            }
        )
        == 4
    )
    from harness.sampling.runner import sample

    res = sample(spec, tmp_path / "s", device="cpu", progress=False)
    payload = json.loads((tmp_path / "s" / "spec.json").read_text())
    assert payload["sampling_identity"]["numerics"] == {"device_type": "cpu", "dtype": "fp32", "tf32": False}
    assert payload["sampling_identity_hash"] == base == res.resolved.identity_hash


def test_every_loaded_file_and_the_numerics_version_are_part_of_the_identity(tmp_path, monkeypatch):
    """The files a generator loads enter by digest, nested ones too (the tokenizer's checkpoint sat one level
    down in info() and was missed), keyed by role so the same bytes elsewhere match; bumping
    NUMERICS_VERSION (a code change that moves pixels) changes the identity."""
    from harness.core.interfaces import NoSampling
    from harness.runs import specs
    from harness.runs.protocols import get_protocol
    from harness.runs.specs import ModelSpec, RunSpec, sampling_identity_hash

    spec = RunSpec(ModelSpec("real-data"), get_protocol("demo"))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "ar.safetensors").write_bytes(b"generator weights")
        (tmp_path / folder / "tok.safetensors").write_bytes(b"tokenizer weights")

    def info(folder):
        return {
            "checkpoint": str(tmp_path / folder / "ar.safetensors"),
            "linear_kernel": "onednn-packed",
            "tokenizer": {"name": "t", "checkpoint": str(tmp_path / folder / "tok.safetensors")},
        }

    h = lambda i: sampling_identity_hash(spec, NoSampling(), "truncate", i)  # noqa: E731
    base = h(info("a"))
    assert h(info("b")) == base  # the same bytes at another path
    (tmp_path / "b" / "tok.safetensors").write_bytes(b"retrained tokenizer")
    assert h(info("b")) != base  # only the nested tokenizer file changed
    assert specs.sampling_identity(spec, NoSampling(), "truncate", info("a"))["files"] == {
        "checkpoint": sha256_bytes(b"generator weights"),
        "tokenizer.checkpoint": sha256_bytes(b"tokenizer weights"),
    }
    seeds = specs.seed_hash(specs.sampling_identity(spec, NoSampling(), "truncate", info("a")))
    monkeypatch.setattr(specs, "NUMERICS_VERSION", specs.NUMERICS_VERSION + 1)
    assert h(info("a")) != base
    # the chunk seeds do not move with the files or the numerics version: before/after comparisons stay paired
    # (and every existing run keeps its seeds: the seed hash is the identity hash as it was before these keys)
    for i in (info("a"), info("b")):
        assert specs.seed_hash(specs.sampling_identity(spec, NoSampling(), "truncate", i)) == seeds
    old = {
        k: v
        for k, v in specs.sampling_identity(spec, NoSampling(), "truncate", info("a")).items()
        if k not in ("files", "numerics_version")
    }
    assert seeds == specs.config.spec_hash(old)


def test_the_committed_default_weights_are_in_the_identity():
    """alitok-tiny loads its committed weights by default (no checkpoint in the spec): both files, by digest."""
    from harness.core.io import sha256_file
    from harness.core.registry import generators, load_plugins
    from harness.runs.records import model_info
    from harness.runs.specs import loaded_files

    load_plugins()
    files = loaded_files(model_info(generators.get("alitok-tiny")(device=torch.device("cpu")).info()))
    weights = REPO / "alitok" / "weights"
    assert files == {
        "checkpoint": sha256_file(weights / "tiny_ar.safetensors"),
        "tokenizer.checkpoint": sha256_file(weights / "tiny_tokenizer.safetensors"),
    }


def test_records_name_the_cpu_model_and_kernels_and_a_resume_on_another_cpu(tmp_path, monkeypatch):
    """The sample record names the machine (CPU model from /proc/cpuinfo, not just "x86_64"; GPU name; the
    kernels that ran); a folder continued on another CPU model says so, since its bytes may differ."""
    import time

    from harness.core import devices
    from harness.sampling.record import sample_record

    proto = dataclasses.replace(get_protocol("demo"), num_samples=50)
    spec = RunSpec(ModelSpec("real-data"), proto)
    monkeypatch.setattr(devices, "cpu_model", lambda: "CPU A")
    first = sample_record(sample(spec, tmp_path / "s", device="cpu", progress=False), time.time())
    assert first.machine["cpu_model"] == "CPU A" and first.machine["gpu_name"] == devices.gpu_name()
    assert first.env["device_name"] == "CPU A"  # was platform.processor(): "x86_64" on every x86 machine
    assert first.machine["chunks_made_on"] == [{"cpu_model": "CPU A", "kernels": ""}]
    assert not any("another machine" in n for n in first.notes)
    monkeypatch.setattr(devices, "cpu_model", lambda: "CPU B")  # two more chunks, made on another CPU
    spec = RunSpec(ModelSpec("real-data"), dataclasses.replace(proto, num_samples=100))
    second = sample_record(sample(spec, tmp_path / "s", device="cpu", progress=False), time.time())
    assert second.machine["cpu_model"] == "CPU B"
    assert [m["cpu_model"] for m in second.machine["chunks_made_on"]] == ["CPU A", "CPU B"]
    (note,) = [n for n in second.notes if "another machine" in n]
    assert "CPU A" in note and "CPU B" in note


def test_the_machine_block_names_the_kernels_a_generator_ran():
    from harness.runs.records import RunRecord, kernels_of

    info = {"linear_kernel": "onednn-packed", "attention_kernel": "c-decode"}
    rec = RunRecord(kind="sample", machine={"kernels": kernels_of(info)})
    assert rec.machine["kernels"] == {"linear": "onednn-packed", "attention": "c-decode"}
    assert set(rec.machine) == {"cpu_model", "gpu_name", "kernels"} and rec.machine["cpu_model"]
