"""Suite entries and sweeps: labelled variants of models, expanded into one run each (pure functions).

A suite lists entries. Each entry has a ``label`` (its output folder and table row), a model with
overrides (a ``ModelSpec``: checkpoint, options, sampling), optionally its own protocol and seed,
and optionally a sweep: a grid over sampling parameters and/or protocol seeds. ``expand`` turns the
entries into ``ExpandedEntry`` objects, one per run, with labels like
``alitok-tiny_cfg_scale=2_seed=1`` that are unique and safe as folder names.

``inputs`` name the files a suite needs (checkpoints, references, datasets) with where each comes
from; ``missing_inputs`` lists what is absent, so ``validate`` can say exactly what to fetch.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from typing import Any, Literal

from harness.core.config import ConfigError
from harness.runs.specs import ModelSpec

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A grid: every combination of the listed sampling values (key order kept), times every seed."""

    sampling: dict[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for key, values in self.sampling.items():
            if not values:
                raise ValueError(f"sweep.sampling.{key}: needs at least one value")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"sweep.seeds: repeated seed in {list(self.seeds)}")
        if not self.sampling and not self.seeds:
            raise ValueError("sweep: give sampling values and/or seeds")


@dataclasses.dataclass(frozen=True)
class SuiteEntry:
    label: str
    model: ModelSpec
    task: Literal["sample", "recon"] = "sample"  # recon: model.name is a tokenizer, `source` the real images
    protocol: str | None = None  # None: the suite's protocol
    seed: int | None = None  # None: the protocol's seed
    variant: str | None = None  # ablation group shown in tables/plots (seed replicates share it)
    source: str | None = None  # recon: the real images (an ImageNet folder, npz, embedded:val ...)
    reference: str | None = None  # None: the suite's reference statistics
    sweep: Sweep | None = None

    def __post_init__(self) -> None:
        check_label(self.label, "label")
        if self.sweep and self.sweep.seeds and self.seed is not None:
            raise ValueError(f"{self.label}: give seed or sweep.seeds, not both")
        if self.task == "recon" and self.source is None:
            raise ValueError(f"{self.label}: a recon entry needs source (the real images)")


@dataclasses.dataclass(frozen=True)
class SuiteInput:
    """A file or folder a suite needs, and where a user gets it."""

    path: str
    what: str
    source: str


@dataclasses.dataclass(frozen=True)
class ExpandedEntry:
    label: str  # unique; the output folder and table row
    parent: str  # the entry's own label (the series name in sweep plots)
    task: str
    model: ModelSpec  # sweep sampling values merged into model.sampling
    protocol: str | None
    seed: int | None
    variant: str | None
    source: str | None
    reference: str | None
    point: dict[str, Any]  # the sweep coordinates ({} without a sweep)

    def record_spec_fields(self) -> dict[str, Any]:
        """Keys the suite runner puts into ``RunRecord.spec`` so reports find label, variant and point."""
        return {"label": self.label, "variant": self.variant, "sweep_point": dict(self.point)}


def check_label(label: str, where: str = "label") -> None:
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise ConfigError(
            f"{where}: {label!r} is not a usable label (letters, digits and . _ = + - only, "
            "starting with a letter or digit; it names a folder)"
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_label(label: str, point: dict[str, Any]) -> str:
    return "_".join([label] + [f"{k}={_fmt(v)}" for k, v in point.items()])


def expand_entry(entry: SuiteEntry) -> list[ExpandedEntry]:
    def make(point: dict[str, Any], sampling: dict[str, Any], seed: int | None, variant: str | None):
        model = dataclasses.replace(entry.model, sampling={**entry.model.sampling, **sampling})
        return ExpandedEntry(
            point_label(entry.label, point),
            entry.label,
            entry.task,
            model,
            entry.protocol,
            seed,
            variant,
            entry.source,
            entry.reference,
            point,
        )

    if entry.sweep is None:
        return [make({}, {}, entry.seed, entry.variant)]
    keys = list(entry.sweep.sampling)
    grids = list(itertools.product(*(entry.sweep.sampling[k] for k in keys))) if keys else [()]
    out = []
    for values in grids:
        sampling = dict(zip(keys, values))
        # seed replicates of one configuration form one group (the ablation bars' error bars)
        group = entry.variant or (point_label(entry.label, sampling) if entry.sweep.seeds else None)
        for seed in entry.sweep.seeds or (entry.seed,):
            point = {**sampling, **({"seed": seed} if entry.sweep.seeds else {})}
            out.append(make(point, sampling, seed, group))
    return out


def expand(entries: tuple[SuiteEntry, ...] | list[SuiteEntry]) -> list[ExpandedEntry]:
    """Every run of a suite, in entry order; labels must come out unique."""
    out = [e for entry in entries for e in expand_entry(entry)]
    seen: dict[str, str] = {}
    for e in out:
        if e.label in seen:
            raise ConfigError(
                f"entries: label {e.label!r} occurs twice (from entries {seen[e.label]!r} and "
                f"{e.parent!r}); give the entries distinct labels"
            )
        seen[e.label] = e.parent
    return out


def missing_inputs(
    runs: list[ExpandedEntry],
    inputs: tuple[SuiteInput, ...] | list[SuiteInput] = (),
    extra_paths: tuple[str, ...] = (),
    root: str | Path = ".",
) -> list[str]:
    """One line per absent file: entry checkpoints and sources, ``extra_paths`` (e.g. the suite's reference)
    and the declared inputs some run still uses (one a ``--set`` replaced is not needed any more).
    ``embedded:``-style sources and unset paths are not files."""
    known = {i.path: i for i in inputs}
    used = {v for r in runs for v in _strings((r.model, r.source, r.reference))} | set(extra_paths)
    needed: dict[str, str] = {i.path: "" for i in inputs if i.path in used}
    for r in runs:
        for field, path in (
            ("model.checkpoint", r.model.checkpoint),
            ("model.tokenizer_checkpoint", r.model.tokenizer_checkpoint),
            ("source", r.source),
            ("reference", r.reference),
        ):
            if _is_file_path(path):
                needed.setdefault(path, f"{field} of {r.parent}")
    for path in extra_paths:
        if _is_file_path(path):
            needed.setdefault(path, "suite")
    lines = []
    for path, used_by in needed.items():
        if (Path(root) / Path(path).expanduser()).exists():
            continue
        i = known.get(path)
        where = f"{i.what}; get it from {i.source}" if i else used_by
        lines.append(f"missing {path}: {where}")
    return lines


def _strings(value: Any) -> list[str]:
    """Every string inside ``value`` (dataclasses, mappings and lists walked): a run's paths, options included."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _strings([getattr(value, f.name) for f in dataclasses.fields(value)])
    if isinstance(value, dict):
        return _strings(list(value.values()))
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _is_file_path(path: str | None) -> bool:
    """False for unset values and scheme-like sources (``embedded:val``, ``random:0``, ``fid-helper``)."""
    return bool(path) and ":" not in path.split("/")[0] and ("/" in path or "." in path)


def runnable(run: ExpandedEntry, inputs=(), extra_paths: tuple[str, ...] = (), root: str | Path = ".") -> list[str]:
    """What one run lacks (empty when it can run): its own paths plus ``extra_paths`` (the suite's
    reference and Inception weights when the run uses them). The suite runner skips such a run."""
    lines = missing_inputs([run], (), extra_paths, root)
    known = {i.path: i for i in inputs}
    # name the source of declared inputs here too
    out = []
    for line in lines:
        path = line[len("missing ") :].split(": ", 1)[0]
        i = known.get(path)
        out.append(f"missing {path}: {i.what}; get it from {i.source}" if i else line)
    return out


def describe(runs: list[ExpandedEntry]) -> list[str]:
    """The expansion as ``validate`` prints it."""
    lines = []
    for r in runs:
        extras = [f"{k}={_fmt(v)}" for k, v in r.model.sampling.items()]
        if r.seed is not None:
            extras.append(f"seed={r.seed}")
        if r.protocol:
            extras.append(f"protocol={r.protocol}")
        lines.append(
            f"{r.label}: {r.task} {r.model.name}"
            + (f" ({', '.join(extras)})" if extras else "")
            + (f" [variant {r.variant}]" if r.variant else "")
        )
    return lines


@dataclasses.dataclass(frozen=True)
class EntriesFile:
    """The entry-related part of a suite YAML (what this module reads; suite.py owns the rest)."""

    entries: tuple[SuiteEntry, ...]
    inputs: tuple[SuiteInput, ...] = ()


def entries_from_suite_dict(data: dict[str, Any], where: str = "suite") -> EntriesFile:
    """Parse ``entries`` and ``inputs`` of a suite mapping (other keys are left to the suite loader)."""
    from harness.core import config

    part = {k: data[k] for k in ("entries", "inputs") if k in data}
    if "entries" not in part:
        raise ConfigError(f"{where}: entries: required key missing")
    try:
        return config.from_dict(EntriesFile, part)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
