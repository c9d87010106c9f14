"""The ablation suite: rows x paired seeds, each row a tokenizer -> AR generator -> held-out measurements.

A suite YAML (``alitok/configs/ablation.yaml``) names the rows (switches over a base), the baseline
row and presets; a preset holds the seeds, a launcher, the three trainer configs (stage 1, stage 2,
AR) and the evaluation. This module only uses registries: trainers by the name their config gives,
the tokenizer and generator plugins by name, so the engine never imports a model family.

Layout under ``--out`` (one folder per row/seed/stage; a folder with its record is done and skipped,
one without resumes from its last checkpoint)::

    seed{S}/{ROW}/stage1/      train_record.json, last.safetensors, model.safetensors, ...
    seed{S}/F/stage2/          (rows with ``stage2: true``; stage 1 and AR come from the ``from`` row)
    seed{S}/{ROW}/ar/          train_record.json (held-out next-token accuracy / CE, baselines)
    seed{S}/{ROW}/eval/        eval_record.json (variant = ROW): rFID/PSNR/SSIM, gFID/KID/P/R, AR metrics
    summary.json, ablation_table.md, ablation_bars.png/.svg, command.txt

Data: preset ``tiny`` reads the embedded natural patches; preset ``imagenet`` reads ImageNet folders
(``imagenet_root`` or ``--imagenet-root``: every trainer whose ``data.source`` is imagenet gets it as
``data.root``, and the evaluation's held-out images are the first ``per_class`` of each class of its
``val`` split, streamed in batches; gFID against those images or against ``eval.ref_stats``).

Paired seeds: seed S is the ``seed`` of every row's trainers (initialisation and data order) and of
its sampling; the data and held-out images are the same for all rows. The table gives each row's
mean and sample sd over seeds and the paired difference to the baseline row (mean of the per-seed
differences ± paired standard error, ``harness.report.paired``), which removes the seed-to-seed
variation the rows share.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from harness.config import ConfigError, dump_yaml, load_yaml
from harness.report.paired import DESCRIPTION as PAIRED_DESCRIPTION
from harness.io import atomic_path

RECORD = "train_record.json"
EVAL_RECORD = "eval_record.json"
ROW_KEYS = {"label", "model", "aux_loss_weight", "from", "stage2", "stage2_overrides"}
PRESET_KEYS = {"seeds", "launcher", "device", "stage1", "stage2", "ar", "eval", "imagenet_root"}
EVAL_KEYS = {"source", "image_size", "per_class", "inception", "batch_size", "kid_subset_size",
             "tokenizer_plugin", "generator_plugin", "split", "ref_stats", "workers"}
EVAL_SOURCES = ("embedded", "imagenet")
# (metric, higher is better) in table order; names follow the report's record fields where they exist
TABLE_METRICS = (("ar_acc", True), ("ar_ce", False), ("ar_ce_gain_unigram", True), ("ar_ce_gain_positional", True),
                 ("ar_acc_prefix", True), ("ar_acc_first_row", True), ("ar_acc_rest", True),
                 ("ar_ce_gain_positional_prefix", True), ("ar_ce_gain_positional_first_row", True),
                 ("ar_ce_gain_positional_rest", True),
                 ("rfid", False), ("psnr", True), ("ssim", True), ("codebook_usage", True), ("codebook_perplexity", True),
                 ("fid", False), ("kid", False), ("prec", True), ("recall", True))


# ----------------------------------------------------------------------------------------------
# The suite file
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    label: str
    model: dict[str, Any]
    aux_loss_weight: Any  # float, None (= the trainer's official default) or "unset" (key absent)
    source: str | None  # ``from``: reuse that row's stage 1 and AR
    stage2: bool
    stage2_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # merged into the stage-2 config


@dataclasses.dataclass(frozen=True)
class Suite:
    path: Path
    preset_name: str
    rows: tuple[Row, ...]
    baseline: str
    seeds: tuple[int, ...]
    launcher: tuple[str, ...]
    device: str
    stage1: dict[str, Any]
    stage2: dict[str, Any]
    ar: dict[str, Any]
    eval: dict[str, Any]
    imagenet_root: str | None

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def load_suite(path: str | Path, preset: str, rows: Iterable[str] | None = None,
               seeds: Iterable[int] | None = None, imagenet_root: str | None = None) -> Suite:
    """Parse and check the suite YAML; ``rows`` / ``seeds`` select a subset (a row with ``from``
    brings its source row along); ``imagenet_root`` replaces the preset's (``--imagenet-root``)."""
    path = Path(path)
    data = load_yaml(path)
    unknown = set(data) - {"baseline", "rows", "presets"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} (known: baseline, rows, presets)")
    raw_rows = data.get("rows")
    if not isinstance(raw_rows, dict) or not raw_rows:
        raise ConfigError(f"{path}: rows: a mapping of row name -> switches is required")
    parsed = []
    for name, r in raw_rows.items():
        r = r or {}
        bad = set(r) - ROW_KEYS
        if bad:
            raise ConfigError(f"{path}: rows.{name}: unknown key(s) {', '.join(sorted(bad))} (known: {', '.join(sorted(ROW_KEYS))})")
        src = r.get("from")
        if src is not None and (src not in raw_rows or (raw_rows[src] or {}).get("from")):
            raise ConfigError(f"{path}: rows.{name}.from: {src!r} is not a row that trains its own stage 1")
        if src is not None and (set(r) & {"model", "aux_loss_weight"}):
            raise ConfigError(f"{path}: rows.{name}: a row with from: reuses {src}'s stage 1; it takes no model/aux keys")
        if src is not None and not r.get("stage2"):
            raise ConfigError(f"{path}: rows.{name}: from: without stage2: true would repeat row {src}")
        if r.get("stage2_overrides") and not r.get("stage2"):
            raise ConfigError(f"{path}: rows.{name}.stage2_overrides: needs stage2: true")
        parsed.append(Row(str(name), str(r.get("label", name)), dict(r.get("model") or {}),
                          r["aux_loss_weight"] if "aux_loss_weight" in r else "unset", src, bool(r.get("stage2")),
                          dict(r.get("stage2_overrides") or {})))
    baseline = data.get("baseline", parsed[0].name)
    if baseline not in raw_rows:
        raise ConfigError(f"{path}: baseline: {baseline!r} is not a row ({', '.join(raw_rows)})")
    presets = data.get("presets") or {}
    if preset not in presets:
        raise ConfigError(f"{path}: --preset {preset}: no such preset (known: {', '.join(presets) or 'none'})")
    p = presets[preset]
    bad = set(p) - PRESET_KEYS
    if bad:
        raise ConfigError(f"{path}: presets.{preset}: unknown key(s) {', '.join(sorted(bad))}")
    for key in ("seeds", "stage1", "ar", "eval"):
        if key not in p:
            raise ConfigError(f"{path}: presets.{preset}.{key}: required")
    bad = set(p["eval"]) - EVAL_KEYS
    if bad:
        raise ConfigError(f"{path}: presets.{preset}.eval: unknown key(s) {', '.join(sorted(bad))}")
    if p["eval"].get("source", "embedded") not in EVAL_SOURCES:
        raise ConfigError(f"{path}: presets.{preset}.eval.source: {p['eval'].get('source')!r} "
                          f"(known: {', '.join(EVAL_SOURCES)})")
    all_seeds = tuple(int(s) for s in p["seeds"])
    if not all_seeds or len(set(all_seeds)) != len(all_seeds):
        raise ConfigError(f"{path}: presets.{preset}.seeds: a list of distinct seeds is required")
    if any(r.stage2 for r in parsed) and "stage2" not in p:
        raise ConfigError(f"{path}: presets.{preset}.stage2: required (a row has stage2: true)")
    if rows is not None:
        wanted = list(dict.fromkeys(rows))
        missing = [r for r in wanted if r not in raw_rows]
        if missing:
            raise ConfigError(f"--rows: no such row(s) {', '.join(missing)} (known: {', '.join(raw_rows)})")
        keep = set(wanted) | {raw_rows[r].get("from") for r in wanted if (raw_rows[r] or {}).get("from")}
        parsed = [r for r in parsed if r.name in keep]
    if seeds is not None:
        all_seeds = tuple(int(s) for s in seeds)
    root = _preset_root(path, p)
    if imagenet_root is not None:  # from the command line: relative to the current folder
        root = str(Path(imagenet_root).expanduser().resolve())
    ev = dict(p["eval"])
    if ev.get("ref_stats") and not Path(ev["ref_stats"]).is_absolute():
        ev["ref_stats"] = str((path.parent / ev["ref_stats"]).resolve())
    return Suite(path, preset, tuple(parsed), baseline, all_seeds, tuple(str(a) for a in p.get("launcher") or ()),
                 str(p.get("device", "auto")), _resolve(p["stage1"], path, ("model_config",)),
                 _resolve(p.get("stage2") or {}, path, ()), dict(p["ar"]), ev,
                 root)


def _preset_root(path: Path, preset: dict[str, Any]) -> str | None:
    """The preset's ``imagenet_root`` (relative: against the suite file's folder)."""
    root = preset.get("imagenet_root")
    if root is None:
        return None
    p = Path(str(root)).expanduser()
    return str(p if p.is_absolute() else (path.parent / p).resolve())


def _resolve(cfg: dict[str, Any], suite_path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    out = json.loads(json.dumps(cfg))
    for k in keys:
        if isinstance(out.get(k), str) and not Path(out[k]).is_absolute():
            out[k] = str((suite_path.parent / out[k]).resolve())
    return out


# ----------------------------------------------------------------------------------------------
# The plan: one job per (seed, row, stage), each with its folder and trainer config
# ----------------------------------------------------------------------------------------------
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
    return {"grid": grid, "num_prefix_tokens": 1 + grid if k is None else int(k),
            "codebook_size": int(model["codebook_size"])}


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
                s2 = {**_deep_merge(suite.stage2, row.stage2_overrides), "init_from": str(s1_dir / "last.safetensors"),
                      "seed": seed, "export": None}
                s2_dir = out / f"seed{seed}" / row.name / "stage2"
                jobs.append(Job(seed, row.name, "stage2", s2_dir, s2))
                decoder = s2_dir / "model.safetensors"
            if not row.source:
                ar = json.loads(json.dumps(suite.ar))
                ar["model"] = {**(ar.get("model") or {}), **_geometry(_model_dict(suite, row))}
                ar.update(tokenizer=str(s1_dir / "last.safetensors"), seed=seed, export=None)
                jobs.append(Job(seed, row.name, "ar", ar_dir, ar))
            jobs.append(Job(seed, row.name, "eval", out / f"seed{seed}" / row.name / "eval",
                            {**suite.eval, "seed": seed, "variant": row.name, "label": row.label,
                             "protocol": f"ablation-{suite.preset_name}",
                             "tokenizer_checkpoint": str(decoder), "ar_checkpoint": str(ar_dir / "model.safetensors"),
                             "ar_record": str(ar_dir / RECORD), "stage1_record": str(s1_dir / RECORD),
                             **({"imagenet_root": suite.imagenet_root} if suite.eval.get("source") == "imagenet"
                                else {})}))
    # every trainer whose data source is ImageNet reads the preset's imagenet_root
    return [j if j.stage == "eval" else dataclasses.replace(j, config=_with_root(j.config, suite.imagenet_root))
            for j in jobs]


def command_line(suite: Suite, out: str | Path) -> str:
    rows = "" if {r.name for r in suite.rows} == set(load_yaml(suite.path)["rows"]) else \
        " --rows " + ",".join(r.name for r in suite.rows)
    yaml_root = _preset_root(suite.path, load_yaml(suite.path)["presets"][suite.preset_name])
    root = f" --imagenet-root {suite.imagenet_root}" if suite.imagenet_root not in (None, yaml_root) else ""
    return f"alitok-bench ablate {suite.path} --preset {suite.preset_name} --out {out}{rows}{root}"


def validate(suite: Suite, out: str | Path) -> dict[str, Any]:
    """The plan and what is missing, without running anything (the trainers check their configs)."""
    from harness.registry import load_plugins, trainers

    load_plugins()
    jobs = plan(suite, out)
    missing: list[str] = _missing_imagenet(suite, jobs)
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
            missing.append(f"{job.stage} ({name}): reads only {', '.join(sources)} data; ImageNet input is not implemented")
        check = getattr(trainers.get(name), "check_config", None)
        for problem in (check(job.config) if check else []):
            key = (job.stage, problem)
            if key not in seen:
                seen.add(key)
                missing.append(f"{job.stage} ({name}): {problem}")
    ev = suite.eval
    from harness.registry import generators, tokenizers

    for kind, reg in (("tokenizer_plugin", tokenizers), ("generator_plugin", generators)):
        if ev.get(kind) not in reg.names():
            missing.append(f"eval.{kind}: {ev.get(kind)!r} is not registered")
    if ev.get("ref_stats") and not Path(ev["ref_stats"]).is_file():
        missing.append(f"eval.ref_stats: {ev['ref_stats']}: no such reference npz (alitok-bench ref-stats build ...)")
    stages: dict[str, int] = {}
    for job in jobs:
        stages[job.stage] = stages.get(job.stage, 0) + 1
    return {"suite": str(suite.path), "preset": suite.preset_name, "rows": [r.name for r in suite.rows],
            "seeds": list(suite.seeds), "world_size": world, "jobs": len(jobs), "jobs_by_stage": stages,
            "done": sum(j.done for j in jobs),
            "commands": [shell_join(_train_argv(suite, j, j.out / "ablation_config.yaml")) for j in jobs
                         if j.stage != "eval" and j.seed == suite.seeds[0]],
            "missing": missing}


def _missing_imagenet(suite: Suite, jobs: list[Job]) -> list[str]:
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
            splits.update([str(data.get("split", "train"))] if job.stage != "ar" else
                          [str(data.get("train_split", "train")), str(data.get("val_split", "val"))])
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


def _train_argv(suite: Suite, job: Job, config_path: Path) -> list[str]:
    tail = ["-m", "harness", "train", str(config_path), "--out", str(job.out), "--device", suite.device]
    return [*suite.launcher, *tail] if suite.launcher else [sys.executable, *tail]


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------
def run(suite: Suite, out: str | Path, log=print) -> dict[str, Any]:
    """Every job not done yet, in plan order, then the summary (table, plot, summary.json)."""
    out = Path(out)
    jobs = plan(suite, out)
    absent = _missing_imagenet(suite, [j for j in jobs if not j.done])
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
        subprocess.run(_train_argv(suite, job, cfg_path), check=True)
        return
    from harness.devices import resolve_device
    from harness.registry import load_plugins, trainers

    load_plugins()
    cfg = dict(job.config)
    trainer = trainers.get(cfg.pop("trainer"))
    trainer(cfg, job.out, resolve_device(suite.device))
    if not job.done:
        raise RuntimeError(f"{job.out}: the trainer finished without writing {RECORD}")


# ----------------------------------------------------------------------------------------------
# Evaluation of one (seed, row)
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Heldout:
    """The evaluation's held-out images, read in batches (ImageNet val never sits in memory at once)."""

    n: int
    num_classes: int
    identity: bytes  # what the cached Inception features of these images are keyed by
    description: str
    batches: Any  # (batch_size) -> iterator of (uint8 [b,S,S,3], labels [b])


def heldout(ev: dict[str, Any]) -> Heldout:
    """embedded: the natural patches' val region; imagenet: the first ``per_class`` images of every
    class of ``imagenet_root/<split>`` (default val), ADM centre crops at ``image_size``."""
    size, per_class = int(ev["image_size"]), int(ev["per_class"])
    source = ev.get("source", "embedded")
    if source == "embedded":
        from harness.data.embedded import natural_patches

        real, labels = natural_patches("val", size, per_class, seed=0)

        def batches(bs: int):
            for i in range(0, len(real), bs):
                yield real[i:i + bs], labels[i:i + bs]

        return Heldout(len(real), int(labels.max()) + 1, real.tobytes(),
                       f"embedded val split, {per_class} per class", batches)
    if source != "imagenet":
        raise ConfigError(f"eval.source: {source!r} (known: {', '.join(EVAL_SOURCES)})")
    if not ev.get("imagenet_root"):
        raise ConfigError("eval.source imagenet: the preset names no imagenet_root")
    from harness.data.imagenet import ImageFolderDataset
    from harness.data.imagenet_train import first_per_class, iter_center_crops

    split = str(ev.get("split", "val"))
    ds = ImageFolderDataset(ev["imagenet_root"], split, size)
    idx = first_per_class(ds.labels, per_class)
    labels = ds.labels[idx]
    listing = "\n".join(f"{ds.samples[i][0].relative_to(ds.root)}:{ds.samples[i][0].stat().st_size}" for i in idx)

    def batches(bs: int):
        for start, images in zip(range(0, len(idx), bs),
                                 iter_center_crops(ds, idx, bs, int(ev.get("workers", 4)))):
            yield images, labels[start:start + bs]

    return Heldout(len(idx), len(ds.classes), f"imagenet:{size}:{listing}".encode(),
                   f"ImageNet {ev['imagenet_root']}/{split}: first {per_class} per class, ADM centre crop {size}",
                   batches)


def ar_metrics(ar_record: dict[str, Any]) -> dict[str, float]:
    """Held-out next-token metrics from the AR train record, with the gains over the baselines
    (baseline CE minus model CE, nats per token: > 0 means the model beats the code frequencies)."""
    prov = ar_record["metric_provenance"]
    held, base = prov["heldout"], prov["baselines"]
    out = {"ar_acc": held["overall"]["acc"], "ar_ce": held["overall"]["ce"],
           "ar_ce_gain_unigram": base["unigram"]["ce"] - held["overall"]["ce"],
           "ar_ce_gain_positional": base["positional_unigram"]["ce"] - held["overall"]["ce"],
           "unigram_ce": base["unigram"]["ce"], "positional_unigram_ce": base["positional_unigram"]["ce"],
           "unigram_acc": base["unigram"]["acc"], "positional_unigram_acc": base["positional_unigram"]["acc"]}
    for group in ("prefix", "first_row", "rest"):
        if group in held:
            out[f"ar_acc_{group}"] = held[group]["acc"]
            out[f"ar_ce_{group}"] = held[group]["ce"]
            by = base.get("positional_unigram_by_group", {}).get(group)
            if by:
                out[f"ar_ce_gain_positional_{group}"] = by["ce"] - held[group]["ce"]
                out[f"positional_unigram_acc_{group}"] = by["acc"]
    stats = prov.get("code_stats") or {}
    if stats:
        out["train_code_perplexity"] = stats["perplexity"]
    return out


def _features_cache(held: Heldout, extractor, out: Path) -> Path:
    """Where the held-out images' Inception pool features are kept: once per run folder (every row
    and seed compares with the same images), keyed by images and weights."""
    import hashlib

    key = hashlib.sha256(held.identity + extractor.weights.describe()["sha256"].encode()).hexdigest()[:16]
    return out / f"heldout_features-{key}.npy"


def evaluate_job(job: Job, device_name: str) -> None:
    """Reconstruction (rFID / PSNR / SSIM / codebook use) of the held-out images, then samples of the
    generator (gFID against the held-out images or ``ref_stats``, KID, precision / recall against
    the held-out images), and the AR model's held-out next-token figures from its train record.
    Images stream through in batches of ``batch_size``; only Inception features are kept."""
    import torch

    from harness.data.npz import NpzWriter
    from harness.devices import resolve_device
    from harness.metrics.features import extract_features
    from harness.metrics.fid import feature_statistics, fid_from_features, frechet_distance
    from harness.metrics.inception import InceptionExtractor
    from harness.metrics.kid import kernel_inception_distance
    from harness.metrics.prc import precision_recall
    from harness.metrics.recon import codebook_stats, psnr, ssim
    from harness.records import RunRecord, code_info, env_info, read_record, write_record
    from harness.registry import generators, load_plugins, tokenizers

    load_plugins()
    ev, device = job.config, resolve_device(device_name)
    bs, size = int(ev["batch_size"]), int(ev["image_size"])
    ref = None
    extractor = InceptionExtractor(ev["inception"], str(device))
    if ev.get("ref_stats"):  # checked before any image is read
        from harness.metrics.refstats import check_compatible, load_reference

        ref = load_reference(ev["ref_stats"])
        check_compatible(ref, extractor.describe(), (size, size))
    t0 = time.perf_counter()
    held = heldout(ev)
    tok = tokenizers.get(ev["tokenizer_plugin"])(device=device, checkpoint=ev["tokenizer_checkpoint"])

    def pool(images: np.ndarray, name: str) -> np.ndarray:
        return extract_features(images, extractor, bs, cache=False, name=name, progress=False).pool

    cache = _features_cache(held, extractor, job.out.parent.parent.parent)
    f_real = np.load(cache) if cache.is_file() else None
    real_parts, recon_parts, p_parts, s_parts, codes = [], [], [], [], []
    with torch.inference_mode():
        for real, _ in held.batches(bs):
            c = tok.encode(torch.from_numpy(real).to(device))
            codes.append(c.cpu())
            recon = tok.decode(c).cpu().numpy()
            p_parts.append(psnr(real, recon))
            s_parts.append(ssim(real, recon))
            recon_parts.append(pool(recon, "reconstructions"))
            if f_real is None:
                real_parts.append(pool(real, "held-out images"))
    if f_real is None:
        f_real = np.concatenate(real_parts)
        with atomic_path(cache, "wb") as f:
            np.save(f, f_real)
    f_recon = np.concatenate(recon_parts)
    rec = {"rfid": fid_from_features(f_recon, f_real), "psnr": float(np.mean(np.concatenate(p_parts))),
           "ssim": float(np.mean(np.concatenate(s_parts))),
           **codebook_stats(torch.cat(codes), tok.codebook_size), "weights": extractor.weights.describe()}
    t_recon = time.perf_counter()

    gen = generators.get(ev["generator_plugin"])(device=device, checkpoint=ev["ar_checkpoint"],
                                                 tokenizer_checkpoint=ev["tokenizer_checkpoint"])
    n = held.n
    gen_labels = torch.arange(n) % held.num_classes  # class-balanced, as upstream's range(1000) x 50
    rng = torch.Generator().manual_seed(int(ev["seed"]))
    gen_parts = []
    job.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(job.out / "samples.npz", "wb") as f, NpzWriter(f) as w:
        w.begin_array("arr_0", (n, size, size, 3), np.uint8)
        for i in range(0, n, bs):
            samples = gen.generate(gen_labels[i:i + bs], rng).cpu().numpy()
            w.write_rows(samples)
            gen_parts.append(pool(samples, "samples"))
        w.end_array()
        w.add("arr_1", gen_labels.numpy())
        w.close()
    t_gen = time.perf_counter()
    f_gen = np.concatenate(gen_parts)
    kid = kernel_inception_distance(f_gen, f_real, subset_size=min(int(ev["kid_subset_size"]), n))
    pr = precision_recall(f_gen, f_real, k=3, device=device)
    if ref is None:
        fid = fid_from_features(f_gen, f_real)
        gfid_reference = f"Inception statistics of the held-out images ({held.description}), not the training crops"
    else:
        mu, sigma = feature_statistics(f_gen, "samples")
        fid = frechet_distance(mu, sigma, ref.mu, ref.sigma)
        gfid_reference = f"reference statistics {ref.path} (sha256 {ref.sha256[:12]}...)"
    ar_rec = read_record(ev["ar_record"])
    metrics = {"fid": fid, "kid": kid["kid"], "kid_std": kid["kid_std"],
               "prec": pr["precision"], "recall": pr["recall"],
               **{k: rec[k] for k in ("rfid", "psnr", "ssim", "codebook_usage", "codebook_perplexity")},
               **ar_metrics(ar_rec)}
    t_end = time.perf_counter()
    imagenet = ev.get("source") == "imagenet"
    record = RunRecord(
        kind="eval", model={"name": f"ablation-{job.row}", "variant": job.row, "label": ev["label"],
                            "tokenizer_checkpoint": ev["tokenizer_checkpoint"], "ar_checkpoint": ev["ar_checkpoint"]},
        # protocol "ablation-<preset>": the claims tell tiny rows from full-scale rows of the same name
        spec={"variant": job.row, "label": ev["label"], "protocol": {"name": ev["protocol"]},
              "eval": {k: v for k, v in ev.items() if k in EVAL_KEYS},
              "ar_record": ev["ar_record"], "stage1_record": ev["stage1_record"],
              "heldout": {"description": held.description, "images": int(n), "classes": held.num_classes}},
        seeds={"seed": int(ev["seed"])}, code=code_info(), env=env_info(device),
        metrics={k: float(v) for k, v in metrics.items()},
        metric_provenance={"weights": rec["weights"], "n_heldout": int(n), "n_samples": int(n),
                           "rfid_reference": "Inception statistics of the same held-out images",
                           "gfid_reference": gfid_reference,
                           "kid_prc_reference": "the held-out images' Inception features",
                           "reference": ref.describe() if ref is not None else None,
                           "sampling": gen.info().get("sampling"), "kid_subset_size": kid.get("kid_subset_size"),
                           "ar_heldout": ar_rec["metric_provenance"]["heldout"],
                           "ar_baselines": ar_rec["metric_provenance"]["baselines"]},
        timings={"recon_s": round(t_recon - t0, 2), "generate_s": round(t_gen - t_recon, 2),
                 "features_s": round(t_end - t_gen, 2)},
        notes=[f"held-out: {held.description}" if imagenet else
               "tiny scale, embedded natural patches: not paper-comparable; compare rows, not to the paper"])
    write_record(record, job.out, EVAL_RECORD)


# ----------------------------------------------------------------------------------------------
# Summary: mean and spread per row, paired differences to the baseline
# ----------------------------------------------------------------------------------------------
def mean_sd(values: list[float]) -> dict[str, Any]:
    from harness.stats import mean_sd as _mean_sd

    return _mean_sd(values).to_dict()


def paired_differences(per_seed: dict[str, dict[int, dict[str, float]]], baseline: str,
                       metric: str) -> dict[str, dict[str, Any]]:
    """Row minus baseline on the seeds both have, per seed, summarised by the project's one paired
    statistic (``harness.report.paired``): mean ± paired SE, with the sd of the differences kept too."""
    from harness.report.paired import paired_difference

    out = {}
    base = per_seed.get(baseline, {})
    for row, seeds in per_seed.items():
        common = sorted(s for s in seeds if s in base and metric in seeds[s] and metric in base[s])
        d = paired_difference(seeds[s][metric] - base[s][metric] for s in common)
        out[row] = {**d.to_dict(), "seeds": common}
    return out


def summarize(suite: Suite, out: str | Path) -> dict[str, Any]:
    from harness.records import read_record

    out = Path(out)
    per_seed: dict[str, dict[int, dict[str, float]]] = {r.name: {} for r in suite.rows}
    seconds: dict[str, float] = {}
    jobs = plan(suite, out)
    for job in jobs:
        if not job.done:
            continue
        if job.stage == "eval":
            rec = read_record(job.out / EVAL_RECORD)
            per_seed[job.row][job.seed] = rec["metrics"]
        else:  # only its timings are read here
            rec = json.loads((job.out / RECORD).read_text())
        t = rec.get("timings") or {}
        spent = sum(float(v) for k, v in t.items() if k.endswith("_s") and k != "logged_train_s" and v is not None)
        seconds[job.stage] = seconds.get(job.stage, 0.0) + spent
    rows = {}
    for r in suite.rows:
        rows[r.name] = {"label": r.label, "seeds": sorted(per_seed[r.name]), "metrics": {}}
        for m, _ in TABLE_METRICS:
            vals = [v[m] for v in per_seed[r.name].values() if m in v]
            if vals:
                rows[r.name]["metrics"][m] = {**mean_sd(vals),
                                              "diff_to_baseline": paired_differences(per_seed, suite.baseline, m)[r.name]}
    summary = {"suite": str(suite.path), "preset": suite.preset_name, "baseline": suite.baseline,
               "command": command_line(suite, out), "rows": rows,
               "complete": all(len(per_seed[r.name]) == len(suite.seeds) for r in suite.rows),
               "jobs_done": sum(j.done for j in jobs), "jobs": len(jobs),
               # wall seconds of the finished jobs as their records give them (the last invocation of a
               # resumed training counts only its own steps); under the machine's load at the time
               "recorded_seconds_by_stage": {k: round(v, 1) for k, v in seconds.items()},
               "per_seed": {r: {str(s): m for s, m in v.items()} for r, v in per_seed.items()}}
    from harness.records import write_result_json

    write_result_json(summary, out / "summary.json", command=f"{summary['command']} --summarize")
    with atomic_path(out / "ablation_table.md", "w") as f:
        f.write(table_markdown(summary))
    _plot(summary, out)
    return summary


def _fmt(stat: dict[str, Any] | None, digits: int = 3, spread: str = "sd") -> str:
    """``mean ± spread`` (spread "sd" for a row over seeds, "se" for a paired difference)."""
    if not stat or stat.get("mean") is None:
        return "–"
    sd = stat.get(spread)
    return f"{stat['mean']:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{stat['mean']:.{digits}f}"


def table_markdown(summary: dict[str, Any]) -> str:
    rows = summary["rows"]
    metrics = [m for m, _ in TABLE_METRICS if any(m in r["metrics"] for r in rows.values())]
    higher = dict(TABLE_METRICS)
    total = sum((summary.get("recorded_seconds_by_stage") or {}).values())
    lines = [f"# Ablation ({summary['preset']} preset)", "",
             f"Regenerate: `{summary['command']}`", "",
             f"Jobs finished: {summary.get('jobs_done')} of {summary.get('jobs')}; recorded compute "
             f"{total / 60:.0f} min ({', '.join(f'{k} {v / 60:.0f}' for k, v in (summary.get('recorded_seconds_by_stage') or {}).items())} min).", "",
             "Each cell: mean ± sample sd over seeds (n seeds in the header of each row). "
             f"Second table: difference to row {summary['baseline']} paired by seed, as {PAIRED_DESCRIPTION}.",
             "AR columns are held-out next-token figures; `ar_ce_gain_*` = baseline CE − model CE "
             "(nats/token, > 0: better than the code-frequency baseline).", ""]
    groups = (("AR model, held-out next-token", [m for m in metrics if m.startswith("ar_")]),
              ("Tokenizer and generator, held-out images", [m for m in metrics if not m.startswith("ar_")]))
    for group, ms in groups:
        if not ms:
            continue
        for title, key in (("per row", None), (f"paired difference to {summary['baseline']}", "diff_to_baseline")):
            lines += [f"## {group}: {title}", "",
                      "| row | n | " + " | ".join(f"{m} ({'↑' if higher[m] else '↓'})" for m in ms) + " |",
                      "|---|---|" + "---|" * len(ms)]
            for name, r in rows.items():
                cells = []
                for m in ms:
                    stat = r["metrics"].get(m)
                    cells.append(_fmt(stat if key is None or stat is None else stat[key],
                                      4 if m in ("kid", "prec", "recall", "ssim") else 3, "sd" if key is None else "se"))
                lines.append(f"| {name}: {r['label']} | {len(r['seeds'])} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def _plot(summary: dict[str, Any], out: Path) -> None:
    """Bars of the mean with sd error bars for the headline metrics, and the paired differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.plots import save

    metrics = [m for m in ("ar_acc", "ar_ce_gain_positional", "codebook_perplexity", "rfid", "psnr", "fid")
               if any(m in r["metrics"] for r in summary["rows"].values())]
    if not metrics:
        return
    names = list(summary["rows"])
    fig, axes = plt.subplots(2, len(metrics), figsize=(3.3 * len(metrics), 6.4), squeeze=False)
    for j, m in enumerate(metrics):
        for i, key in enumerate((None, "diff_to_baseline")):
            ax = axes[i][j]
            stats = [summary["rows"][n]["metrics"].get(m) for n in names]
            stats = [None if s is None else (s if key is None else s[key]) for s in stats]
            means = [np.nan if s is None or s["mean"] is None else s["mean"] for s in stats]
            spread = "sd" if key is None else "se"   # rows: sd over seeds; differences: paired SE
            sds = [np.nan if s is None or s.get(spread) is None else s[spread] for s in stats]
            xs = np.arange(len(names))
            ax.bar(xs, means, color=[f"C{k}" for k in range(len(names))])
            ax.errorbar(xs, means, yerr=sds, fmt="none", ecolor="black", capsize=3)
            ax.set_xticks(xs, names, fontsize=7, rotation=30)
            ax.axhline(0, color="0.5", lw=0.6)
            arrow = "↑" if dict(TABLE_METRICS)[m] else "↓"
            ax.set_title(f"{m} ({arrow})" if key is None else f"{m} − {summary['baseline']} (paired)", fontsize=8)
    n = max(len(r["seeds"]) for r in summary["rows"].values())
    fig.suptitle(f"Ablation, {summary['preset']} preset, {n} paired seeds: rows mean ± sd; "
                 "differences mean ± paired SE", fontsize=10)
    fig.tight_layout()
    save(fig, out / "ablation_bars")


def print_summary(summary: dict[str, Any], log=print) -> None:
    log(table_markdown(summary))
    if not summary.get("complete"):
        log("incomplete: rerun the same command to finish the missing rows/seeds (done folders are skipped)")


def shell_join(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)

