"""Run a sampling plan in this process (alone or as one torchrun rank) and gather on rank 0.

Every rank: check the folder belongs to this sampling identity, take its chunks (round-robin),
skip the verified ones, generate the rest with a per-chunk (or per-legacy-rank) torch.Generator on
the model's device, write each shard atomically and append a line to its own manifest part.
Rank 0 then gathers ``samples.npz`` after a barrier.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core import config, devices
from harness.core.config import ConfigError
from harness.core.errors import UserError
from harness.core.interfaces import Generator, check_images
from harness.core.io import check_output_dir
from harness.core.locks import FolderInUse, acquire, check_same_job
from harness.core.registry import generators, load_plugins
from harness.runs.specs import (
    ModelSpec,
    RunSpec,
    numerics,
    resolve_quantization,
    resolve_sampling,
    run_spec_hash,
    sampling_identity,
    seed_hash,
)
from harness.sampling import shards
from harness.sampling.gather import gather
from harness.sampling.plan import SamplingPlan

CHUNK_DELAY_ENV = "ALITOK_BENCH_TEST_CHUNK_DELAY"  # tests only: seconds to sleep after each chunk
CHUNK_GATE_ENV = "ALITOK_BENCH_TEST_CHUNK_GATE"  # tests only: after each chunk, wait until this file exists


@dataclasses.dataclass
class Resolved:
    """A spec bound to a live generator: what decides the pixels, and its hash."""

    spec: RunSpec
    generator: Generator
    sampling: Any
    quantization: str
    model_info: dict[str, Any]
    identity: dict[str, Any]
    identity_hash: str
    spec_hash: str
    seed_hash: str  # what the chunk seeds derive from (harness.runs.specs.seed_hash)

    @property
    def plan(self) -> SamplingPlan:
        return SamplingPlan(self.spec.protocol, self.identity_hash, self.seed_hash)


@dataclasses.dataclass
class SampleResult:
    out_dir: Path
    resolved: Resolved
    rank: int
    world_size: int
    backend: str | None
    device: str
    chunks_total: int
    chunks_run: int
    chunks_skipped: int
    images_generated: int
    seconds_generating: float
    gathered: dict[str, Any] | None  # rank 0 only
    conditions: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def images_per_s(self) -> float | None:
        """Throughput of the chunks this run made; after a resume that made none, of those the manifest timed."""
        if self.seconds_generating > 0:
            return self.images_generated / self.seconds_generating
        return (self.gathered or {}).get("throughput", {}).get("images_per_s")


_OPTION_TYPES = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


def _check_option_type(name: str, key: str, value: Any, param: inspect.Parameter) -> None:
    """An option is typed by its factory parameter's default (or a plain annotation when the default is None):
    ``--set model.options.per_class=abc`` is a config error, not a crash inside the factory."""
    default = param.default
    kind = (
        type(default)
        if default not in (inspect.Parameter.empty, None)
        else {"int": int, "bool": bool, "float": float, "str": str}.get(str(param.annotation).replace(" | None", ""))
    )
    if kind not in _OPTION_TYPES or value is None:
        return
    ok = isinstance(value, _OPTION_TYPES[kind]) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"model.options.{key}: {value!r} is not of type {kind.__name__} (generator {name!r})")


def _call_factory(name: str, factory: Any, kwargs: dict[str, Any], options: tuple[str, ...] = ()) -> Generator:
    """Call a generator factory; a keyword it does not take, or a model option of the wrong type, is a config
    error naming the option."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        for key in kwargs:
            if key not in accepted:
                where = "model.options." + key if key not in ("dtype", "quantization") else key
                raise ConfigError(f"{where}: generator {name!r} does not take {key!r} (takes: {', '.join(accepted)})")
    for key in options:
        if key in params:
            _check_option_type(name, key, kwargs[key], params[key])
    return factory(**kwargs)


def build_generator(model: ModelSpec, device: torch.device, dtype: str | None = None) -> Generator:
    load_plugins()
    factory = generators.get(model.name)
    kwargs: dict[str, Any] = {
        "device": device,
        "checkpoint": model.checkpoint,
        "tokenizer_checkpoint": model.tokenizer_checkpoint,
        **model.options,
    }
    if model.quantization is not None:
        kwargs["quantization"] = model.quantization
    if dtype not in (None, "fp32", "float32"):
        kwargs["dtype"] = devices.resolve_dtype(dtype)
    gen = _call_factory(model.name, factory, kwargs, tuple(model.options))
    if not isinstance(gen, Generator):
        raise ConfigError(f"generator {model.name!r}: factory returned {type(gen).__name__}, not a harness Generator")
    return gen


def resolve(spec: RunSpec, generator: Generator, runtime: dict[str, Any] | None = None) -> Resolved:
    """``runtime``: :func:`harness.runs.specs.numerics` of this run (default: CPU, fp32)."""
    p = spec.protocol
    if generator.image_size != p.image_size:
        raise ConfigError(
            f"generator {spec.model.name!r} makes {generator.image_size} px images but protocol "
            f"{p.name!r} wants {p.image_size} px"
        )
    if generator.num_classes != p.num_classes:
        raise ConfigError(
            f"generator {spec.model.name!r} has {generator.num_classes} classes but protocol "
            f"{p.name!r} has {p.num_classes}"
        )
    sampling = resolve_sampling(spec.model, generator)
    quant = resolve_quantization(spec.model, generator)
    from harness.runs.records import model_info

    info = model_info(generator.info())
    ident = sampling_identity(spec, sampling, quant, info, runtime)
    return Resolved(
        spec, generator, sampling, quant, info, ident, config.spec_hash(ident), run_spec_hash(spec), seed_hash(ident)
    )


def folder_payload(r: Resolved) -> dict[str, Any]:
    return {
        "spec": config.to_dict(r.spec),
        "spec_hash": r.spec_hash,
        "sampling_identity": r.identity,
        "sampling_identity_hash": r.identity_hash,
        "seed_hash": r.seed_hash,
        "sampling": config.to_dict(r.sampling),
        "quantization": r.quantization,
    }


def sample(
    spec: RunSpec,
    out: str | Path,
    *,
    device: str = "auto",
    dtype: str = "fp32",
    tf32: bool = False,
    force: bool = False,
    progress: bool = True,
    generator: Generator | None = None,
    wait: bool = False,
    chunk_range: tuple[int, int] | None = None,
    gather_samples: bool = True,
) -> SampleResult:
    """Sample ``spec`` into ``out``; call from every rank under torchrun (joins the process group).

    ``wait``: when another job holds ``out``, wait for it instead of failing with "in use by PID ...".
    ``chunk_range``: only chunks ``lo <= k < hi`` (one task of a cluster job array, ``harness.suites.cluster``);
    ``gather_samples=False``: stop after the shards (another job gathers ``samples.npz``)."""
    out = Path(out)
    dist = devices.init_distributed(device)
    dev = devices.resolve_device(device)
    devices.set_tf32(tf32)
    gen_model = generator or build_generator(spec.model, dev, dtype)
    r = resolve(spec, gen_model, numerics(dev.type, dtype, tf32))
    plan = r.plan

    check_output_dir(out)
    # One job per folder: rank 0 holds the lock for the whole job; the others check, after the barrier,
    # that the holder is their own job (so a second job fails on every rank, and none hangs).
    lock, busy = None, None
    if dist.is_main:
        try:
            lock = acquire(out, wait=wait, what="sampling folder")
        except FolderInUse as e:
            busy = e  # raised after the barrier, so the other ranks do not wait for a rank 0 that left
    try:
        mode = shards.check_folder(out, r.identity_hash, force)  # every rank checks: all fail alike, no hang
        if lock is not None:
            if mode == "force":
                shards.clear_folder(out)
            (out / shards.SHARD_DIR).mkdir(parents=True, exist_ok=True)
            shards.remove_stale_temps(out, lock)  # left by a killed run; we hold the lock, so no one is writing
            shards.write_folder_spec(out, folder_payload(r))
        devices.barrier()
        if busy is not None:
            raise busy
        if not dist.is_main:
            check_same_job(out, "sampling folder")
        return _sample_chunks(spec, out, r, plan, dist, dev, gen_model, progress, chunk_range, gather_samples)
    finally:
        if lock is not None:
            lock.release()


def run_conditions(dev: torch.device, world_size: int) -> dict[str, Any]:
    """What a throughput figure depends on besides the model: threads, load at start, device, processes; and
    the CPU model, which (with the kernels, added by the caller) decides how the arithmetic rounds."""
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_1m_at_start": load,
        "cpu_count": os.cpu_count(),
        "device": devices.device_name(dev),
        "cpu_model": devices.cpu_model(),
        "world_size": world_size,
    }


def _sample_chunks(
    spec, out, r, plan, dist, dev, gen_model, progress, chunk_range=None, gather_samples=True
) -> SampleResult:
    from harness.runs.records import kernels_of

    conditions = {**run_conditions(dev, dist.world_size), "kernels": kernels_of(r.model_info)}
    mine = plan.chunks_for_rank(dist.rank, dist.world_size)
    if chunk_range is not None:
        lo, hi = chunk_range
        if not 0 <= lo < hi <= plan.num_chunks:
            raise UserError(f"chunk range [{lo}, {hi}) not within the plan's [0, {plan.num_chunks})")
        mine = [k for k in mine if lo <= k < hi]
    manifest = shards.read_manifest(out)
    delay = float(os.environ.get(CHUNK_DELAY_ENV, "0") or 0)
    gate = os.environ.get(CHUNK_GATE_ENV)
    ran = skipped = made = 0
    seconds = 0.0
    rng: torch.Generator | None = None
    last_k: int | None = None  # the chunk whose end state ``rng`` holds (legacy streams)
    from tqdm import tqdm

    bar = tqdm(
        total=len(mine),
        desc=f"sample {spec.model.name} (rank {dist.rank}/{dist.world_size})",
        unit="chunk",
        disable=not (progress and dist.is_main),
        leave=False,
    )
    for k in mine:
        c = plan.chunk(k)
        if shards.verified_entry(out, k, len(c.indices), r.identity_hash, manifest):
            skipped += 1
            bar.update(1)
            continue
        prev = plan.previous(c)
        if prev is None:
            rng = torch.Generator(device=dev)
            rng.manual_seed(plan.seed_for(c))
        elif last_k != prev:  # resuming a legacy stream: continue from the stored end state of chunk k-1
            rng = torch.Generator(device=dev)
            state = shards.read_shard(shards.shard_path(out, prev)).get("rng_state")
            if state is None:
                raise UserError(f"{shards.shard_path(out, prev)}: no rng_state; cannot resume the legacy stream")
            rng.set_state(torch.from_numpy(np.ascontiguousarray(state)))
        labels = torch.from_numpy(c.labels).to(dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            images = gen_model.generate(labels, rng, r.sampling)
        devices.synchronize(dev)
        chunk_s = time.perf_counter() - t0
        seconds += chunk_s
        check_images(images, spec.protocol.image_size, name=f"{spec.model.name} output")
        if images.shape[0] != len(c.indices):
            raise ValueError(f"{spec.model.name}: returned {images.shape[0]} images for {len(c.indices)} labels")
        state = rng.get_state().numpy() if plan.legacy else None
        _, sha = shards.write_shard(out, k, images.cpu().numpy(), c.labels, c.indices, state)
        shards.append_manifest_part(
            out, dist.rank, shards.manifest_line(k, len(c.indices), sha, r.identity_hash, chunk_s, conditions)
        )
        last_k = k
        ran += 1
        made += len(c.indices)
        bar.update(1)
        if delay:
            time.sleep(delay)
        while gate and not os.path.exists(gate):  # a test holds the run here, whatever the machine's load
            time.sleep(0.05)
    bar.close()

    devices.barrier()
    gathered = gather(out, plan, spec.protocol.image_size) if dist.is_main and gather_samples else None
    return SampleResult(
        out,
        r,
        dist.rank,
        dist.world_size,
        dist.backend,
        str(dev),
        plan.num_chunks,
        ran,
        skipped,
        made,
        seconds,
        gathered,
        conditions,
    )
