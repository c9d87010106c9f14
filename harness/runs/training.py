"""Training infrastructure every trainer shares: the resumable loop, the warm-up/cosine schedule,
the optimizer section of trainer configs, config paths, publishing and the train record.

A run folder (``--out``) holds everything a run writes: ``last.safetensors`` (model),
``last_optim.pt`` (optimizer + RNG state, weights_only-loadable), ``log.jsonl`` (one line per logged
step), ``config.json``, ``model.safetensors`` (the inference export) and ``train_record.json``.
Nothing is written outside it unless the user asks with ``--publish``, which copies the export
to the config's ``export:`` path (the package's committed weights). A killed run restarted on the
same folder continues from the last checkpoint step with the RNG state restored, so it draws the
batches it would have drawn.

The model and optimizer files are one checkpoint and change together: a save writes both into
``.checkpoint-pending/``, then a ``committed.json`` there (the commit point), then renames them into place.
A kill before the commit leaves the previous pair untouched (the pending folder is discarded on restart);
a kill after it is rolled forward on restart. A pair whose steps still differ (copied by hand, or torn by
an older version) is refused in one line rather than resumed.

Floor 2: imports the bottom floor and ``harness.runs.records``; model families import this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from harness.core.config import ConfigError
from harness.core.io import atomic_path, atomic_target, sha256_file, write_json_atomic
from harness.nn.checkpoints.checkpoint import CheckpointError, load_state_dict, save_safetensors

EXPORT_NAME = "model.safetensors"
RECORD_NAME = "train_record.json"
PENDING_DIR = ".checkpoint-pending"  # a checkpoint being saved (see the module docstring)
COMMIT_NAME = "committed.json"  # written last into PENDING_DIR: from then on the pair is the checkpoint


# ----------------------------------------------------------------------------------------------
# Config sections and the schedule
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW and its learning-rate schedule: linear warm-up, then constant or cosine to ``end_lr``."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    end_lr: float = 0.0  # cosine only: the LR reached at the last step
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or self.end_lr < 0:
            raise ValueError(
                f"optim: lr must be > 0, warmup_steps and end_lr >= 0 "
                f"(got {self.lr}, {self.warmup_steps}, {self.end_lr})"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The keys every trainer config shares (a trainer's config subclasses this, ``kw_only``)."""

    steps: int
    batch_size: int  # the global batch: each of N processes takes batch_size / N
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 100
    export: str | None = None  # where --publish copies the exported weights (null: nothing to publish)
    # Full sizes: each step's batch in grad_accum micro-batches (one optimizer step on the summed
    # gradients of loss / grad_accum), forward passes under bf16 autocast when precision is bf16.
    grad_accum: int = 1
    precision: Literal["fp32", "bf16"] = "fp32"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise ValueError(
                f"grad_accum must be >= 1 and divide batch_size, got {self.grad_accum} for {self.batch_size}"
            )
        if self.log_every < 1 or self.ckpt_every < 1:
            raise ValueError(f"log_every and ckpt_every must be >= 1, got {self.log_every}, {self.ckpt_every}")


def micro_batches(n: int, accum: int) -> list[slice]:
    """``accum`` equal slices of a batch of ``n`` (this rank's share): gradient accumulation."""
    if accum < 1 or n % accum:
        raise ConfigError(f"grad_accum: {accum} does not divide this process's batch of {n}")
    m = n // accum
    return [slice(i * m, (i + 1) * m) for i in range(accum)]


def autocast(device: torch.device | str, precision: str):
    """bf16 autocast for the forward pass (the loss is still reduced in float32 by autocast's
    rules); fp32: nothing. Parameters, gradients and the optimizer stay float32 either way."""
    if precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ConfigError(f"precision: {precision!r} (known: fp32, bf16)")
    return contextlib.nullcontext()


def lr_at(step: int, total_steps: int, optim: OptimConfig) -> float:
    """LR of 0-based ``step``: ``lr * (step+1)/warmup`` during warm-up, then ``lr`` (constant) or
    ``end_lr + (lr - end_lr) * (1 + cos(pi * t)) / 2`` with t going 0 -> 1 over the remaining steps."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "cosine":
        t = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
        return optim.end_lr + 0.5 * (optim.lr - optim.end_lr) * (1 + math.cos(math.pi * t))
    return optim.lr


def set_lr(optimizer: torch.optim.Optimizer, step: int, total_steps: int, optim: OptimConfig) -> float:
    """Scale every param group's ``base_lr`` (default: ``optim.lr``) by the schedule at ``step``."""
    factor = lr_at(step, total_steps, optim) / optim.lr
    for group in optimizer.param_groups:
        group["lr"] = group.get("base_lr", optim.lr) * factor
    return optimizer.param_groups[0]["lr"]


def make_optimizer(groups: Iterable[Any], optim: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)


# ----------------------------------------------------------------------------------------------
# Config paths and publishing
# ----------------------------------------------------------------------------------------------
def resolve_config_paths(
    data: dict[str, Any], base: str | Path, keys: Iterable[str], keep: Iterable[str] = ()
) -> dict[str, Any]:
    """Relative paths under the dotted ``keys`` of a config mapping, made absolute against ``base``
    (the config file's folder). Values in ``keep`` (names such as ``tiny``) stay as they are."""
    out = json.loads(json.dumps(data))
    keep = set(keep)
    for key in keys:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and node[leaf] not in keep:
            p = Path(node[leaf]).expanduser()
            node[leaf] = str(p if p.is_absolute() else (Path(base) / p).resolve())
    return out


def check_publish(export: str | None, publish: bool) -> None:
    """Before the first step: ``--publish`` needs an ``export:`` destination."""
    if publish and not export:
        raise ConfigError(
            "--publish: this config has export: null, so there is nothing to publish to; "
            "set export: PATH or drop --publish"
        )


def publish_export(exported: Path, export: str | None, publish: bool) -> str | None:
    """Copy the run's inference export to ``export`` when ``--publish`` was given; returns the path."""
    if not (publish and export):
        return None
    with atomic_target(export, suffix=".safetensors") as tmp:
        shutil.copyfile(exported, tmp)
    return str(export)


def check_file(key: str, path: str | None, what: str) -> None:
    """An input file the run needs, checked before the first step (``key`` names the config key)."""
    if path and not Path(path).is_file():
        raise ConfigError(f"{key}: {path}: no such {what}")


# ----------------------------------------------------------------------------------------------
# Data parallel (torchrun)
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Parallel:
    """This process's place in a data-parallel run (rank 0 of 1 without torchrun).

    Every rank draws the whole global batch from the same seeded generator and keeps its slice, so
    the data order is a function of seed and step, never of the world size; gradients are averaged
    over ranks after each backward (what DistributedDataParallel does; done by hand because the
    tokenizer stages call sub-modules, not one forward). Only rank 0 writes files.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's equal slice of a global batch (dim 0)."""
        if self.world_size == 1:
            return batch
        if len(batch) % self.world_size:
            raise ConfigError(f"batch_size: {len(batch)} is not divisible by the world size {self.world_size}")
        n = len(batch) // self.world_size
        return batch[self.rank * n : (self.rank + 1) * n]

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        if self.world_size == 1:
            return
        import torch.distributed as dist

        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad.div_(self.world_size)

    def average_state(self, module: torch.nn.Module) -> None:
        """Average a module's float parameters and buffers over ranks (for in-place updates such
        as an online-clustering codebook, which each rank makes from its own slice)."""
        if self.world_size == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                if t.is_floating_point():
                    dist.all_reduce(t)
                    t.div_(self.world_size)

    def mean_values(self, values: Mapping[str, float]) -> dict[str, float]:
        """Logged figures averaged over ranks (each rank's loss is of its own slice)."""
        if self.world_size == 1 or not values:
            return dict(values)
        import torch.distributed as dist

        t = torch.tensor(
            [float(v) for v in values.values()],
            dtype=torch.float64,
            device=self.device if self.device.type == "cuda" else "cpu",
        )
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world_size).tolist()))

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def init_parallel(device: torch.device) -> Parallel:
    """Under torchrun (``WORLD_SIZE`` > 1) join the process group: gloo on CPU, NCCL on CUDA
    (one GPU per process, ``cuda:LOCAL_RANK``). Without torchrun: rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Parallel(0, 1, device)
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    from harness.core.devices import join_torchrun_group

    join_torchrun_group("nccl" if device.type == "cuda" else "gloo")
    return Parallel(dist.get_rank(), dist.get_world_size(), device)


def close_parallel() -> None:
    from harness.core.devices import leave_group

    leave_group()


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
class TrainLoop:
    """``loop.run(step_fn)`` calls ``step_fn(step) -> dict[str, float]`` for each remaining step.

    ``step_fn`` draws its data from ``loop.generator`` (a seeded ``torch.Generator``), so a resumed
    run continues the same data stream. A folder whose ``config.json`` differs from this run's is
    refused unless it holds no checkpoint (then the run starts there afresh).
    """

    def __init__(
        self,
        out_dir: Path,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        seed: int,
        config: Mapping[str, Any],
        *,
        ckpt_every: int = 100,
        log_every: int = 10,
        metadata: Mapping[str, Any] | None = None,
        parallel: Parallel | None = None,
    ):
        self.parallel = parallel or Parallel()
        self.out = Path(out_dir)
        if self.parallel.is_main:  # one job per training folder; rank 0 holds the lock for the whole job
            from harness.core.locks import hold_for_process

            hold_for_process(self.out, what="training folder")
        self.model, self.optimizer = model, optimizer
        self.total_steps, self.ckpt_every, self.log_every = total_steps, ckpt_every, log_every
        self.generator = torch.Generator().manual_seed(seed)
        self.config = json.loads(json.dumps(dict(config), default=str))
        self.metadata = dict(metadata or {})
        self.step = 0
        self.started_at_step = 0
        self.seconds = 0.0
        if self.parallel.is_main:
            self._finish_pending_save()
            self._check_config()
        self.parallel.barrier()  # the other ranks read the folder rank 0 has checked
        self._resume()

    @property
    def model_path(self) -> Path:
        return self.out / "last.safetensors"

    @property
    def optim_path(self) -> Path:
        return self.out / "last_optim.pt"

    @property
    def has_checkpoint(self) -> bool:
        return self.model_path.exists() and self.optim_path.exists()

    def _check_config(self) -> None:
        cfg_path = self.out / "config.json"
        if cfg_path.exists() and self.has_checkpoint:
            if json.loads(cfg_path.read_text()) != self.config:
                raise CheckpointError(f"{self.out}: holds a run with a different config; use a new --out folder")
            return
        # nothing to resume: a fresh run (its log starts empty)
        write_json_atomic(cfg_path, self.config)
        with atomic_path(self.out / "log.jsonl", "w"):
            pass

    def _finish_pending_save(self) -> None:
        """Roll a committed pending save forward, discard an uncommitted one (the previous pair is intact)."""
        stage = self.out / PENDING_DIR
        if not stage.is_dir():
            return
        if (stage / COMMIT_NAME).is_file():
            for final in (self.model_path, self.optim_path):
                if (stage / final.name).exists():
                    os.replace(stage / final.name, final)
        shutil.rmtree(stage)

    def _checkpoint_step(self) -> int | None:
        """The step ``last.safetensors`` records in its metadata (None for a file without one)."""
        from harness.nn.checkpoints.checkpoint import read_metadata

        step = read_metadata(self.model_path).get("step")
        return int(step) if step is not None and str(step).isdigit() else None

    def _resume(self) -> None:
        if not self.has_checkpoint:
            return
        self.model.load_state_dict(load_state_dict(self.model_path), strict=True)
        try:
            state = torch.load(self.optim_path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise CheckpointError(
                f"{self.optim_path}: optimizer state cannot be loaded with weights_only=True "
                f"({why[:120]}); delete it to start over or use a new --out folder"
            ) from None
        if not isinstance(state, dict) or not {"optimizer", "generator", "step"} <= set(state):
            raise CheckpointError(
                f"{self.optim_path}: not an optimizer state of this harness "
                "(needs optimizer, generator, step); use a new --out folder"
            )
        model_step = self._checkpoint_step()
        if model_step is not None and model_step != int(state["step"]):
            raise CheckpointError(
                f"{self.out}: {self.model_path.name} is at step {model_step} but "
                f"{self.optim_path.name} at step {int(state['step'])} (a torn checkpoint); "
                "resuming would mix them: use a new --out folder"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step = self.started_at_step = int(state["step"])

    def save(self) -> None:
        """Both files of the checkpoint, as one (see the module docstring)."""
        if not self.parallel.is_main:
            return
        stage = self.out / PENDING_DIR
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir()
        meta = {**self.metadata, "step": self.step, "config": self.config}
        save_safetensors(stage / self.model_path.name, self.model.state_dict(), meta)
        with atomic_target(stage / self.optim_path.name, suffix=".pt") as tmp:
            torch.save(
                {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(), "step": self.step},
                tmp,
            )
        write_json_atomic(stage / COMMIT_NAME, {"step": self.step})
        self._finish_pending_save()

    def run(self, step_fn: Callable[[int], Mapping[str, float]], progress: bool = True) -> list[dict]:
        from tqdm import tqdm

        logs = []
        main = self.parallel.is_main
        bar = tqdm(
            total=self.total_steps, initial=self.step, disable=not (progress and main), desc=self.out.name, leave=False
        )
        t0 = time.perf_counter()
        with (self.out / "log.jsonl").open("a") if main else contextlib.nullcontext() as log:
            while self.step < self.total_steps:
                values = step_fn(self.step)
                self.step += 1
                bar.update(1)
                if self.step % self.log_every == 0 or self.step == self.total_steps:
                    values = self.parallel.mean_values(values)
                    row = {
                        "step": self.step,
                        "time_s": round(time.perf_counter() - t0, 3),
                        **{k: float(v) for k, v in values.items()},
                    }
                    if main:
                        log.write(json.dumps(row) + "\n")
                        log.flush()
                    logs.append(row)
                    bar.set_postfix({k: f"{float(v):.4g}" for k, v in list(values.items())[:3]})
                if self.step % self.ckpt_every == 0 or self.step == self.total_steps:
                    self.save()
        bar.close()
        self.seconds = time.perf_counter() - t0
        return logs

    def logged(self) -> list[dict]:
        """Every row of ``log.jsonl`` (also right for a restarted finished run)."""
        log = self.out / "log.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []

    def first_and_last(self, key: str) -> tuple[float | None, float | None]:
        """The first and the last logged value of ``key`` (None, None when no row has it)."""
        rows = [row for row in self.logged() if key in row]
        return (rows[0][key], rows[-1][key]) if rows else (None, None)

    def export(self, state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]) -> Path:
        """The inference weights, ``out/model.safetensors``."""
        return save_safetensors(
            self.out / EXPORT_NAME, dict(state_dict), {**self.metadata, **metadata, "step": self.step}
        )


# ----------------------------------------------------------------------------------------------
# The train record
# ----------------------------------------------------------------------------------------------
def write_train_record(
    loop: TrainLoop,
    *,
    trainer: str,
    model: Mapping[str, Any],
    metrics: Mapping[str, Any],
    device: Any,
    extra: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
    samples: Mapping[str, Any] | None = None,
    metric_provenance: Mapping[str, Any] | None = None,
) -> Path:
    """``out/train_record.json``: a ``RunRecord`` of kind ``train`` (config, model, final metrics, speed)."""
    from harness.runs.records import RunRecord, code_info, env_info, write_record

    steps_run = loop.step - loop.started_at_step
    rows = loop.logged()
    record = RunRecord(
        kind="train",
        spec={"trainer": trainer, "config": loop.config, **(extra or {})},
        model=dict(model),
        code=code_info(),
        env=env_info(
            device,
            loop.parallel.world_size,
            None if loop.parallel.world_size == 1 else ("nccl" if torch.device(device).type == "cuda" else "gloo"),
        ),
        seeds={"seed": loop.config.get("seed")},
        metrics={k: (None if v is None else float(v)) for k, v in metrics.items()},
        samples=dict(samples or {}),
        metric_provenance=dict(metric_provenance or {}),
        speed={
            "steps_per_s": round(steps_run / loop.seconds, 3) if steps_run and loop.seconds else None,
            "note": "steps/s of this invocation under the machine's load at the time",
        },
        timings={
            "train_s": round(loop.seconds, 3),
            "logged_train_s": rows[-1]["time_s"] if rows else None,
            "steps": loop.step,
            "steps_this_invocation": steps_run,
        },
        notes=list(notes),
    )
    return write_record(record, loop.out, RECORD_NAME)


def finish_run(
    loop: TrainLoop,
    summary: dict[str, Any],
    weights: Mapping[str, torch.Tensor],
    *,
    export_to: str | None,
    publish: bool,
    trainer: str,
    model: Mapping[str, Any],
    metrics: Mapping[str, Any],
    device: Any,
    export_metadata: Mapping[str, Any] | None = None,
    **record: Any,
) -> dict[str, Any]:
    """The epilogue every trainer shares, on rank 0 after the last step: ``weights`` exported to
    ``out/model.safetensors`` (with the code's git sha), copied to ``export_to`` on ``--publish``, and
    ``train_record.json`` whose model block names that file (path, sha256, published copy). ``record``:
    write_train_record's ``extra``, ``samples``, ``metric_provenance``, ``notes``. Returns ``summary`` with
    ``export``, ``published`` (when published) and ``record`` added."""
    exported = loop.export(weights, {"git_sha": git_sha(), **(export_metadata or {})})
    published = publish_export(exported, export_to, publish)
    summary["export"] = str(exported)
    if published:
        summary["published"] = published
    model = {**model, "checkpoint": str(exported), "checkpoint_sha256": sha256_file(exported), "published": published}
    path = write_train_record(loop, trainer=trainer, model=model, metrics=metrics, device=device, **record)
    summary["record"] = str(path)
    return summary


def git_sha() -> str:
    """HEAD of the checkout holding the code ("unknown" outside git), for export metadata."""
    from harness.runs.records import git_info

    return git_info()["git_sha"] or "unknown"
