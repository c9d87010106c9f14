"""A minimal resumable training loop shared by every trainer.

The output folder holds ``last.safetensors`` (model), ``last_optim.pt`` (optimizer + RNG state,
weights_only-loadable), ``log.jsonl`` (one line per logged step) and ``config.json``. A killed run
restarted on the same folder continues from the last checkpoint step; the RNG state is restored
so the continuation draws the same batches it would have drawn.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from harness.nn.checkpoint import CheckpointError, load_state_dict, save_safetensors


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class TrainLoop:
    """``loop.run(step_fn)`` calls ``step_fn(step) -> dict[str, float]`` for each remaining step.

    ``step_fn`` draws its data from ``loop.generator`` (a seeded ``torch.Generator``), so a resumed
    run continues the same data stream.
    """

    def __init__(self, out_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 total_steps: int, seed: int, config: Mapping[str, Any], *, ckpt_every: int = 100,
                 log_every: int = 10, trainable: Callable[[str], bool] | None = None,
                 metadata: Mapping[str, Any] | None = None):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model, self.optimizer = model, optimizer
        self.total_steps, self.ckpt_every, self.log_every = total_steps, ckpt_every, log_every
        self.generator = torch.Generator().manual_seed(seed)
        self.config = dict(config)
        self.metadata = dict(metadata or {})
        self.step = 0
        self._check_config()
        self._resume()

    # -- state ----------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.out / "last.safetensors"

    def _check_config(self) -> None:
        cfg_path = self.out / "config.json"
        if cfg_path.exists():
            old = json.loads(cfg_path.read_text())
            if old != json.loads(json.dumps(self.config)):
                raise CheckpointError(f"{self.out}: holds a run with a different config; use a new --out folder")
        else:
            cfg_path.write_text(json.dumps(self.config, indent=2, sort_keys=True))

    def _resume(self) -> None:
        optim_path = self.out / "last_optim.pt"
        if not (self.model_path.exists() and optim_path.exists()):
            return
        self.model.load_state_dict(load_state_dict(self.model_path), strict=True)
        state = torch.load(optim_path, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])

    def save(self) -> None:
        meta = {**self.metadata, "step": self.step, "config": self.config}
        save_safetensors(self.model_path, self.model.state_dict(), meta)
        _atomic_torch_save({"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                            "step": self.step}, self.out / "last_optim.pt")

    # -- loop -----------------------------------------------------------------------------------
    def run(self, step_fn: Callable[[int], Mapping[str, float]], progress: bool = True) -> list[dict]:
        from tqdm import tqdm

        logs = []
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not progress, desc=self.out.name, leave=False)
        t0 = time.perf_counter()
        with (self.out / "log.jsonl").open("a") as log:
            while self.step < self.total_steps:
                values = step_fn(self.step)
                self.step += 1
                bar.update(1)
                if self.step % self.log_every == 0 or self.step == self.total_steps:
                    row = {"step": self.step, "time_s": round(time.perf_counter() - t0, 3),
                           **{k: float(v) for k, v in values.items()}}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                    logs.append(row)
                    bar.set_postfix({k: f"{float(v):.4g}" for k, v in list(values.items())[:3]})
                if self.step % self.ckpt_every == 0 or self.step == self.total_steps:
                    self.save()
        bar.close()
        return logs
