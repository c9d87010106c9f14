"""The plan of an ablation suite: one job per (seed, row, stage), each with its folder and config.

A job's folder holds its record when it is done (``train_record.json``, or ``eval_record.json`` for
the evaluation), so a rerun skips it. A row with ``from`` reuses its source row's stage 1 and AR
model and trains only its stage 2. ``validate`` reports what is missing without running anything.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from harness.core.config import load_yaml, to_dict
from harness.suites.ablation.suite import Row, Suite

RECORD = "train_record.json"
EVAL_RECORD = "eval_record.json"


@dataclasses.dataclass(frozen=True)
class Job:
    seed: int
    row: str
    stage: str  # stage1 | stage2 | ar | eval
    out: Path
    config: dict[str, Any]  # the trainer config (eval: the evaluation inputs)

    @property
    def done(self) -> bool:
        return (self.out / (EVAL_RECORD if self.stage == "eval" else RECORD)).is_file()


def _model_dict(suite: Suite, row: Row) -> dict[str, Any]:
    """The row's tokenizer keys over the preset's (an inline ``model`` over ``model_config``)."""
    base = load_yaml(suite.stage1["model_config"]) if suite.stage1.get("model_config") else {}
    return {**base, **(suite.stage1.get("model") or {}), **row.model}


def _geometry(model: dict[str, Any]) -> dict[str, int]:
    grid = int(model["image_size"]) // int(model["patch_size"])
    k = model.get("num_prefix_tokens")
    return {
        "grid": grid,
        "num_prefix_tokens": 1 + grid if k is None else int(k),
        "codebook_size": int(model["codebook_size"]),
    }


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(base))
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _with_root(cfg: dict[str, Any], root: str | None) -> dict[str, Any]:
    """A trainer config whose data source is ImageNet gets the preset's ``imagenet_root`` (unless it names one)."""
    data = cfg.get("data")
    if root and isinstance(data, dict) and data.get("source") == "imagenet" and not data.get("root"):
        cfg = {**cfg, "data": {**data, "root": root}}
    return cfg


def plan(suite: Suite, out: str | Path) -> list[Job]:
    out = Path(out)
    jobs: list[Job] = []
    for seed in suite.seeds:
        for row in suite.rows:
            base = suite.row(row.source) if row.source else row
            s1_dir = out / f"seed{seed}" / base.name / "stage1"
            ar_dir = out / f"seed{seed}" / base.name / "ar"
            if not row.source:
                s1 = json.loads(json.dumps(suite.stage1))
                s1.pop("model_config", None)
                s1["model"] = _model_dict(suite, row)
                s1["seed"] = seed
                if row.aux_loss_weight != "unset":
                    s1.setdefault("loss", {})["aux_loss_weight"] = row.aux_loss_weight
                s1["export"] = None
                jobs.append(Job(seed, row.name, "stage1", s1_dir, s1))
            decoder = s1_dir / "model.safetensors"
            if row.stage2:
                s2 = {
                    **_deep_merge(suite.stage2, row.stage2_overrides),
                    "init_from": str(s1_dir / "last.safetensors"),
                    "seed": seed,
                    "export": None,
                }
                s2_dir = out / f"seed{seed}" / row.name / "stage2"
                jobs.append(Job(seed, row.name, "stage2", s2_dir, s2))
                decoder = s2_dir / "model.safetensors"
            if not row.source or row.ar_overrides or row.ar_steps_scale:  # a ``from`` row may train its own AR
                if row.source:
                    ar_dir = out / f"seed{seed}" / row.name / "ar"
                ar = _deep_merge(suite.ar, row.ar_overrides)
                if row.ar_steps_scale:
                    ar["steps"] = max(1, round(int(ar["steps"]) * row.ar_steps_scale))
                ar["model"] = {**(ar.get("model") or {}), **_geometry(_model_dict(suite, base))}
                ar.update(tokenizer=str(s1_dir / "last.safetensors"), seed=seed, export=None)
                jobs.append(Job(seed, row.name, "ar", ar_dir, ar))
            jobs.append(
                Job(
                    seed,
                    row.name,
                    "eval",
                    out / f"seed{seed}" / row.name / "eval",
                    {
                        **to_dict(suite.eval),
                        "decoder_noise_std": row.decoder_noise_std,
                        "decoder_blur_sigma": row.decoder_blur_sigma,
                        "decoder_error_scale": row.decoder_error_scale,
                        "seed": seed,
                        "variant": row.name,
                        "label": row.label,
                        "protocol": f"ablation-{suite.preset_name}",
                        "tokenizer_checkpoint": str(decoder),
                        "ar_checkpoint": str(ar_dir / "model.safetensors"),
                        "ar_record": str(ar_dir / RECORD),
                        "stage1_record": str(s1_dir / RECORD),
                        **({"imagenet_root": suite.imagenet_root} if suite.eval.source == "imagenet" else {}),
                    },
                )
            )
    # every trainer whose data source is ImageNet reads the preset's imagenet_root
    return [
        j if j.stage == "eval" else dataclasses.replace(j, config=_with_root(j.config, suite.imagenet_root))
        for j in jobs
    ]


def command_line(suite: Suite, out: str | Path) -> str:
    """The command that reruns (or resumes) this selection of the suite."""
    rows = (
        ""
        if {r.name for r in suite.rows} == set(suite.file_rows)
        else " --rows " + ",".join(r.name for r in suite.rows)
    )
    other_root = suite.imagenet_root not in (None, suite.file_imagenet_root)
    root = f" --imagenet-root {suite.imagenet_root}" if other_root else ""
    return f"alitok-bench ablate {suite.path} --preset {suite.preset_name} --out {out}{rows}{root}"


def validate(suite: Suite, out: str | Path) -> dict[str, Any]:
    """The plan and what is missing, without running anything (the trainers check their configs)."""
    from harness.core.registry import load_plugins, trainers

    load_plugins()
    jobs = plan(suite, out)
    missing: list[str] = missing_imagenet(suite, jobs)
    world = _world_size(suite.launcher)
    seen = set()
    for job in jobs:
        if job.stage == "eval":
            continue
        name = job.config.get("trainer")
        if name not in trainers.names():
            missing.append(f"{job.stage}: trainer {name!r} is not registered")
            continue
        batch = int(job.config.get("batch_size", 0)) // max(1, int(job.config.get("grad_accum", 1)))
        if batch % world:
            missing.append(f"{job.stage}: batch_size / grad_accum = {batch} is not divisible by the world size {world}")
        sources = getattr(trainers.get(name), "data_sources", None)
        if suite.imagenet_root and sources is not None and "imagenet" not in sources and (job.stage, "src") not in seen:
            seen.add((job.stage, "src"))
            missing.append(
                f"{job.stage} ({name}): reads only {', '.join(sources)} data; ImageNet input is not implemented"
            )
        check = getattr(trainers.get(name), "check_config", None)
        for problem in check(job.config) if check else []:
            key = (job.stage, problem)
            if key not in seen:
                seen.add(key)
                missing.append(f"{job.stage} ({name}): {problem}")
    ev = suite.eval
    from harness.core.registry import generators, tokenizers

    for kind, reg in (("tokenizer_plugin", tokenizers), ("generator_plugin", generators)):
        if getattr(ev, kind) not in reg.names():
            missing.append(f"eval.{kind}: {getattr(ev, kind)!r} is not registered")
    if ev.ref_stats and not Path(ev.ref_stats).is_file():
        missing.append(f"eval.ref_stats: {ev.ref_stats}: no such reference npz (alitok-bench ref-stats build ...)")
    stages: dict[str, int] = {}
    for job in jobs:
        stages[job.stage] = stages.get(job.stage, 0) + 1
    return {
        "suite": str(suite.path),
        "preset": suite.preset_name,
        "rows": [r.name for r in suite.rows],
        "seeds": list(suite.seeds),
        "world_size": world,
        "jobs": len(jobs),
        "jobs_by_stage": stages,
        "done": sum(j.done for j in jobs),
        "commands": [
            shell_join(train_argv(suite, j, j.out / "ablation_config.yaml"))
            for j in jobs
            if j.stage != "eval" and j.seed == suite.seeds[0]
        ],
        "missing": missing,
    }


def missing_imagenet(suite: Suite, jobs: list[Job]) -> list[str]:
    """The ImageNet folders the plan reads: the root and each split it names (class folders inside)."""
    splits: set[str] = set()
    for job in jobs:
        data = job.config.get("data") or {}
        if job.stage == "eval":
            if job.config.get("source") == "imagenet":
                splits.add(str(job.config.get("split", "val")))
        elif data.get("source") == "imagenet":
            if data.get("root") and data.get("root") != suite.imagenet_root:
                continue  # a stage with its own root: the trainer checks it
            splits.update(
                [str(data.get("split", "train"))]
                if job.stage != "ar"
                else [str(data.get("train_split", "train")), str(data.get("val_split", "val"))]
            )
    if not splits:
        return []
    root = suite.imagenet_root
    if not root:
        return ["imagenet_root: required (a stage or the evaluation reads ImageNet folders)"]
    if not Path(root).is_dir():
        return [f"imagenet_root: {root}: no such folder (ImageNet {' and '.join(sorted(splits))} class folders)"]
    missing = []
    for split in sorted(splits):
        folder = Path(root) / split
        if not folder.is_dir() or not any(folder.iterdir()):
            missing.append(f"imagenet_root: {folder}: no such folder or empty (root/{split}/<synset>/*.JPEG)")
    return missing


def _world_size(launcher: tuple[str, ...]) -> int:
    for flag in ("--nproc_per_node", "--nproc-per-node"):
        if flag in launcher and launcher.index(flag) + 1 < len(launcher):
            return int(launcher[launcher.index(flag) + 1])
        for a in launcher:
            if a.startswith(flag + "="):
                return int(a.split("=", 1)[1])
    return 1


def train_argv(suite: Suite, job: Job, config_path: Path) -> list[str]:
    tail = ["-m", "harness", "train", str(config_path), "--out", str(job.out), "--device", suite.device]
    return [*suite.launcher, *tail] if suite.launcher else [sys.executable, *tail]


def shell_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
