"""The ablation suite file: YAML -> frozen dataclasses through ``harness.core.config`` like every other config.

The file names the rows (switches over a base), the baseline row and presets. ``from_dict`` rejects
unknown keys and wrong types with their dotted path (``rows.A.colour: unknown key``); the relations
between keys (a ``from`` row, the baseline, distinct seeds) are checked here. A preset's three trainer
configs stay mappings: each trainer checks its own (``ablate --plan`` asks them without running).
``load_suite`` returns one preset, resolved (relative paths against the suite file's folder).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from harness.core.config import ConfigError, from_dict, load_yaml

# (metric, higher is better) in table order; names follow the report's record fields where they exist
TABLE_METRICS = (
    ("ar_acc", True),
    ("ar_ce", False),
    ("ar_ce_gain_unigram", True),
    ("ar_ce_gain_positional", True),
    ("ar_acc_prefix", True),
    ("ar_acc_first_row", True),
    ("ar_acc_rest", True),
    ("ar_ce_gain_positional_prefix", True),
    ("ar_ce_gain_positional_first_row", True),
    ("ar_ce_gain_positional_rest", True),
    ("rfid", False),
    ("psnr", True),
    ("ssim", True),
    ("codebook_usage", True),
    ("codebook_perplexity", True),
    ("fid", False),
    ("kid", False),
    ("prec", True),
    ("recall", True),
)


@dataclasses.dataclass(frozen=True)
class RowConfig:
    """``rows.<name>``: what the row changes over the preset's base."""

    label: str | None = None
    model: dict[str, Any] = dataclasses.field(default_factory=dict)  # TokenizerConfig keys over the preset's
    # a number, null (= the trainer's official default), or absent ("unset": the key is not written)
    aux_loss_weight: float | None | Literal["unset"] = "unset"
    source: str | None = None  # YAML ``from``: reuse that row's stage 1 and AR
    stage2: bool = False
    stage2_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # merged into the stage-2 config
    # a ``from`` row that trains its own AR model on the source's stage-1 codes, with these keys over the preset's
    ar_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    ar_steps_scale: float | None = None  # a ``from`` row's own AR on this fraction of the preset's AR steps
    decoder_noise_std: float = 0.0  # Gaussian noise (uint8 units) added to the decoded reconstructions
    decoder_blur_sigma: float = 0.0  # Gaussian blur (sd in pixels) of the decoded reconstructions
    # reconstructions x + s (x_hat - x): the decoder's error scaled by s (< 1: a better decoder by construction)
    decoder_error_scale: float = 1.0
    # positive control: metric -> the direction it must move against the ``from`` row ("up" | "down")
    control: dict[str, Literal["up", "down"]] = dataclasses.field(default_factory=dict)
    presets: tuple[str, ...] | None = None  # only in these presets (default: every preset)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """``presets.<name>.eval``: the held-out images and how rows are measured on them."""

    image_size: int
    per_class: int  # held-out images per class; the generator makes as many samples
    inception: str  # feature weights (official | fid-helper | random:SEED | path)
    batch_size: int
    kid_subset_size: int  # capped at the number of held-out images
    tokenizer_plugin: str  # registry names: the engine never imports a model family
    generator_plugin: str
    source: Literal["embedded", "imagenet"] = "embedded"
    split: str = "val"  # imagenet: the split the held-out images come from
    ref_stats: str | None = None  # gFID against this reference npz instead of the held-out images
    workers: int = 4  # imagenet: image decoding threads
    decoder_noise_std: float = 0.0  # set per row (a positive control), not in a preset
    decoder_blur_sigma: float = 0.0  # likewise
    decoder_error_scale: float = 1.0  # likewise


@dataclasses.dataclass(frozen=True)
class PresetConfig:
    seeds: tuple[int, ...]
    stage1: dict[str, Any]
    ar: dict[str, Any]
    eval: EvalConfig
    stage2: dict[str, Any] | None = None
    launcher: tuple[str, ...] = ()  # e.g. [torchrun, --nproc_per_node, "8"]; empty: in-process
    device: str = "auto"
    imagenet_root: str | None = None


@dataclasses.dataclass(frozen=True)
class PaperComparison:
    """``paper_comparisons.<name>``: one change of the paper's ablation table, tested at each preset."""

    row: str  # the changed row
    against: str  # the row it changes
    # metric -> [the paper's value of ``against``, of ``row``]: carried over as a relative change
    paper: dict[str, tuple[float, float]]
    note: str | None = None  # how this pairing differs from the paper's, where it does


@dataclasses.dataclass(frozen=True)
class SuiteFile:
    rows: dict[str, RowConfig]
    presets: dict[str, PresetConfig]
    baseline: str | None = None  # default: the first row
    # metric -> a published effect as a relative change of the baseline's mean (e.g. the paper's
    # AR accuracy 5.4 % -> 10.7 %: +0.98); the summary gives the seeds that effect would need
    reference_effects: dict[str, float] = dataclasses.field(default_factory=dict)
    paper_comparisons: dict[str, PaperComparison] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    label: str
    model: dict[str, Any]
    aux_loss_weight: Any  # float, None (= the trainer's official default) or "unset" (key absent)
    source: str | None  # ``from``: reuse that row's stage 1 and AR
    stage2: bool
    stage2_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    ar_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    decoder_noise_std: float = 0.0
    ar_steps_scale: float | None = None
    control: dict[str, str] = dataclasses.field(default_factory=dict)
    decoder_blur_sigma: float = 0.0
    decoder_error_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class Suite:
    """One preset of a suite file, resolved: what the plan, the runner and the summary read."""

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
    eval: EvalConfig
    imagenet_root: str | None
    file_rows: tuple[str, ...] = ()  # every row of the file (a subset is named on the rerun line)
    file_imagenet_root: str | None = None  # the preset's own root (a different one is named on the rerun line)
    reference_effects: dict[str, float] = dataclasses.field(default_factory=dict)
    paper_comparisons: dict[str, PaperComparison] = dataclasses.field(default_factory=dict)

    def row(self, name: str) -> Row:
        return next(r for r in self.rows if r.name == name)


def read_suite_file(path: str | Path) -> SuiteFile:
    """The whole file as dataclasses, every preset checked; relations between keys checked too."""
    path = Path(path)
    data = load_yaml(path)
    rows = data.get("rows")
    if isinstance(rows, dict):  # YAML ``from`` is a Python keyword: the field is ``source``
        data = {**data, "rows": {name: _renamed(r) for name, r in rows.items()}}
    try:
        suite = from_dict(SuiteFile, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {str(e).replace('.source:', '.from:')}") from None
    _check(suite, path)
    return suite


def _renamed(row: Any) -> Any:
    if row is None:
        return {}
    if isinstance(row, dict) and "from" in row:
        return {("source" if k == "from" else k): v for k, v in row.items()}
    return row


def _check(suite: SuiteFile, path: Path) -> None:
    rows = suite.rows
    if not rows:
        raise ConfigError(f"{path}: rows: a mapping of row name -> switches is required")
    for name, r in rows.items():
        src = r.source
        if src is not None and (src not in rows or rows[src].source):
            raise ConfigError(f"{path}: rows.{name}.from: {src!r} is not a row that trains its own stage 1")
        if src is not None and (r.model or r.aux_loss_weight != "unset"):
            raise ConfigError(
                f"{path}: rows.{name}: a row with from: reuses {src}'s stage 1; it takes no model/aux keys"
            )
        changes = (r.stage2, r.ar_overrides, r.ar_steps_scale, r.decoder_noise_std, r.decoder_blur_sigma)
        if src is not None and not any(changes) and r.decoder_error_scale == 1.0:
            raise ConfigError(
                f"{path}: rows.{name}: from: without stage2: true, ar_overrides, ar_steps_scale, decoder_noise_std, "
                f"decoder_blur_sigma or decoder_error_scale would repeat row {src}"
            )
        if r.ar_steps_scale is not None and not 0 < r.ar_steps_scale:
            raise ConfigError(f"{path}: rows.{name}.ar_steps_scale: must be > 0, got {r.ar_steps_scale}")
        if r.stage2_overrides and not r.stage2:
            raise ConfigError(f"{path}: rows.{name}.stage2_overrides: needs stage2: true")
        if (r.ar_overrides or r.ar_steps_scale or r.control) and src is None:
            key = "ar_overrides" if r.ar_overrides else "ar_steps_scale" if r.ar_steps_scale else "control"
            raise ConfigError(f"{path}: rows.{name}.{key}: needs from: (the row it changes)")
        for key in ("decoder_noise_std", "decoder_blur_sigma", "decoder_error_scale"):
            if getattr(r, key) < 0:
                raise ConfigError(f"{path}: rows.{name}.{key}: must be >= 0, got {getattr(r, key)}")
        for metric in r.control:
            if metric not in dict(TABLE_METRICS):
                raise ConfigError(f"{path}: rows.{name}.control.{metric}: not a table metric")
    for metric in suite.reference_effects:
        if metric not in dict(TABLE_METRICS):
            raise ConfigError(f"{path}: reference_effects.{metric}: not a table metric")
    for name, c in suite.paper_comparisons.items():
        for key in ("row", "against"):
            if getattr(c, key) not in rows:
                raise ConfigError(f"{path}: paper_comparisons.{name}.{key}: {getattr(c, key)!r} is not a row")
        for metric, (before, _after) in c.paper.items():
            if metric not in dict(TABLE_METRICS):
                raise ConfigError(f"{path}: paper_comparisons.{name}.paper.{metric}: not a table metric")
            if before == 0:
                raise ConfigError(
                    f"{path}: paper_comparisons.{name}.paper.{metric}: a relative change needs a non-zero first value"
                )
    for name, r in rows.items():
        if r.presets is not None and (r.source and r.presets != rows[r.source].presets and rows[r.source].presets):
            raise ConfigError(f"{path}: rows.{name}.presets: its from row {r.source} is not in all of them")
        for p in r.presets or ():
            if p not in suite.presets:
                raise ConfigError(f"{path}: rows.{name}.presets: {p!r} is not a preset ({', '.join(suite.presets)})")
    if suite.baseline is not None and suite.baseline not in rows:
        raise ConfigError(f"{path}: baseline: {suite.baseline!r} is not a row ({', '.join(rows)})")
    for name, p in suite.presets.items():
        if not p.seeds or len(set(p.seeds)) != len(p.seeds):
            raise ConfigError(f"{path}: presets.{name}.seeds: a list of distinct seeds is required")
        if any(r.stage2 for r in rows.values()) and p.stage2 is None:
            raise ConfigError(f"{path}: presets.{name}.stage2: required (a row has stage2: true)")


def load_suite(
    path: str | Path,
    preset: str,
    rows: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    imagenet_root: str | None = None,
) -> Suite:
    """One preset of the suite file; ``rows`` / ``seeds`` select a subset (a row with ``from`` brings
    its source row along); ``imagenet_root`` replaces the preset's (``--imagenet-root``)."""
    path = Path(path)
    f = read_suite_file(path)
    if preset not in f.presets:
        raise ConfigError(f"{path}: --preset {preset}: no such preset (known: {', '.join(f.presets) or 'none'})")
    p = f.presets[preset]
    parsed = [
        Row(
            name,
            r.label if r.label is not None else name,
            dict(r.model),
            r.aux_loss_weight,
            r.source,
            r.stage2,
            dict(r.stage2_overrides),
            dict(r.ar_overrides),
            float(r.decoder_noise_std),
            r.ar_steps_scale,
            dict(r.control),
            float(r.decoder_blur_sigma),
            float(r.decoder_error_scale),
        )
        for name, r in f.rows.items()
        if r.presets is None or preset in r.presets
    ]
    if rows is not None:
        wanted = list(dict.fromkeys(rows))
        missing = [r for r in wanted if r not in f.rows]
        if missing:
            raise ConfigError(f"--rows: no such row(s) {', '.join(missing)} (known: {', '.join(f.rows)})")
        keep = set(wanted) | {f.rows[r].source for r in wanted if f.rows[r].source}
        parsed = [r for r in parsed if r.name in keep]
    own_root = _resolved_path(path, p.imagenet_root)
    root = own_root
    if imagenet_root is not None:  # from the command line: relative to the current folder
        root = str(Path(imagenet_root).expanduser().resolve())
    ev = p.eval
    if ev.ref_stats:
        ev = dataclasses.replace(ev, ref_stats=_resolved_path(path, ev.ref_stats))
    return Suite(
        path,
        preset,
        tuple(parsed),
        f.baseline or next(iter(f.rows)),
        tuple(int(s) for s in seeds) if seeds is not None else p.seeds,
        p.launcher,
        p.device,
        _resolve(p.stage1, path, ("model_config",)),
        _resolve(p.stage2 or {}, path, ()),
        _copy(p.ar),
        ev,
        root,
        tuple(f.rows),
        own_root,
        dict(f.reference_effects),
        dict(f.paper_comparisons),
    )


def _resolved_path(suite_path: Path, value: str | None) -> str | None:
    """A path of the suite file (relative: against the file's folder)."""
    if value is None:
        return None
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else (suite_path.parent / p).resolve())


def _copy(cfg: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(cfg))


def _resolve(cfg: dict[str, Any], suite_path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    out = _copy(cfg)
    for k in keys:
        if isinstance(out.get(k), str) and not Path(out[k]).is_absolute():
            out[k] = str((suite_path.parent / out[k]).resolve())
    return out
