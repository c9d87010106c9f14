"""Running an ablation suite: every job not done yet, in plan order, then the summary.

A trainer job runs in-process through the trainers registry (the code path of ``alitok-bench train``),
or, with a launcher (torchrun), as a ``python -m harness train`` subprocess. An evaluation job runs
``harness.suites.ablation.evaluation.evaluate_job``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from harness.core.config import ConfigError, dump_yaml
from harness.core.io import atomic_path
from harness.suites.ablation.evaluation import evaluate_job
from harness.suites.ablation.planning import RECORD, Job, command_line, missing_imagenet, plan, train_argv
from harness.suites.ablation.suite import Suite
from harness.suites.ablation.summary import summarize


def run(suite: Suite, out: str | Path, log=print) -> dict[str, Any]:
    """Every job not done yet, in plan order, then the summary (table, plot, summary.json)."""
    out = Path(out)
    jobs = plan(suite, out)
    absent = missing_imagenet(suite, [j for j in jobs if not j.done])
    if absent:  # before anything runs: a missing ImageNet folder would fail hours into the suite
        raise ConfigError(f"{suite.path}: presets.{suite.preset_name}.{absent[0]} (see --plan)")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "command.txt", "w") as f:
        f.write(command_line(suite, out) + "\n")
    t0 = time.perf_counter()
    for i, job in enumerate(jobs, 1):
        if job.done:
            continue
        log(f"[{i}/{len(jobs)}] seed {job.seed} row {job.row} {job.stage} -> {job.out}")
        t = time.perf_counter()
        if job.stage == "eval":
            evaluate_job(job, suite.device)
        else:
            train_job(suite, job)
        log(f"    done in {time.perf_counter() - t:.0f} s")
    summary = summarize(suite, out)
    summary["run_s_this_invocation"] = round(time.perf_counter() - t0, 1)
    return summary


def train_job(suite: Suite, job: Job) -> None:
    """One trainer run. With a launcher (torchrun) it runs as a subprocess; otherwise in-process
    through the trainers registry (the same code path as ``alitok-bench train``)."""
    job.out.mkdir(parents=True, exist_ok=True)
    cfg_path = job.out / "ablation_config.yaml"  # YAML, not JSON: YAML 1.1 reads JSON's 1e-05 as a string
    config = dict(job.config)
    if suite.launcher:  # `train` resolves relative paths against the config's folder: pass absolute ones
        for key in ("init_from", "tokenizer", "decode_tokenizer"):
            if isinstance(config.get(key), str) and not Path(config[key]).is_absolute():
                config[key] = str(Path(config[key]).resolve())
    with atomic_path(cfg_path, "w") as f:
        f.write(dump_yaml(config))
    if suite.launcher:
        subprocess.run(train_argv(suite, job, cfg_path), check=True)
        return
    from harness.core.devices import resolve_device
    from harness.core.registry import load_plugins, trainers

    load_plugins()
    cfg = dict(job.config)
    trainer = trainers.get(cfg.pop("trainer"))
    trainer(cfg, job.out, resolve_device(suite.device))
    if not job.done:
        raise RuntimeError(f"{job.out}: the trainer finished without writing {RECORD}")
