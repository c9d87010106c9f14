"""Evaluate samples against a reference: the ADM evaluator's numbers, with provenance.

``evaluate_samples`` reads each feature extractor's features of the samples once (cached), and of the
reference's own images (``arr_0``) only when a requested metric needs them; the rest compares with the
reference's stored statistics (FID: mu/sigma, sFID: mu_s/sigma_s). Which metric needs what comes from
the one metric table (``harness.metrics.table``); this module only fetches features and dispatches.

A metric the inputs cannot give (sFID against a mu/sigma-only reference, IS with weights that have
no classifier) is skipped with a note (value None) when it came from the default list, and is an
error when it was asked for by name.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import InputFileError, UserError
from harness.data import npz as npz_io
from harness.metrics import eval_facts, guards, table
from harness.metrics import provenance as prov
from harness.metrics.features import extract_features
from harness.metrics.inception import InceptionExtractor, describe_pipeline
from harness.metrics.refstats import Reference, check_compatible, load_reference
from harness.metrics.weights import resolve_weights

ALL_METRICS = tuple(m.name for m in table.TABLE)
UNCERTAINTY_SUBSETS = 10  # k of the disjoint-subset spread of FID
DEFAULT_METRICS = table.default_names()


@dataclasses.dataclass
class EvalResult:
    metrics: dict[str, float | None]
    provenance: dict[str, Any]
    paper_comparable: bool
    warnings: list[str] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    findings: list[dict] = dataclasses.field(default_factory=list)  # the known-mistake guard's (guards.Finding)
    uncertainty: dict[str, dict] = dataclasses.field(default_factory=dict)  # metric -> {std, method, ...}

    def protocol_block(self) -> str:
        """The short "protocol" block printed under the table."""
        found = [guards.Finding(**f) for f in self.findings]
        return guards.render_protocol_block(found, self.provenance.get("protocol_facts"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_path(samples) -> bool:
    return isinstance(samples, (str, Path))


def _check_samples_file(samples) -> tuple[int, int] | None:
    """Cheap header checks of an npz (image size), so bad input fails in a second."""
    if not _is_path(samples):
        if isinstance(samples, np.ndarray):
            npz_io.check_images_array(samples, "samples")
            if samples.shape[0] < 2:
                raise UserError(f"samples: need at least 2 samples for a covariance, got {samples.shape[0]}")
            return int(samples.shape[1]), int(samples.shape[2])
        return None  # an iterable of batches: checked batch by batch
    if Path(samples).is_file():
        shape, dtype = npz_io.npz_array_info(samples, "arr_0")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise InputFileError(samples, f"arr_0 must be uint8 [N,H,W,3] images, got {dtype} {list(shape)}")
        if shape[0] < 2:
            raise InputFileError(samples, f"need at least 2 samples for a covariance, got {shape[0]}")
        return int(shape[1]), int(shape[2])
    if not Path(samples).is_dir():
        raise InputFileError(samples, "samples file or shards folder not found")
    return None


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """How ``evaluate_samples`` measures: the same knobs the ``eval`` verb's flags and a suite's keys set.

    ``metrics``: names or a comma list; None = the ADM evaluator's five, skipping those the reference or
    weights cannot give. ``inception``: a weights spec (official | fid-helper | random:SEED | path) or a
    built ``InceptionExtractor``. ``cache``: True (the feature cache folder), False, or a folder.
    ``allow_partial``: evaluate the verified prefix of an incomplete sampling folder (recorded in
    ``selection``). ``progress``: tqdm bars on stderr (None: when a terminal). ``uncertainty_subsets``: k
    of FID's disjoint-subset spread (0: none); it needs the whole pool3 array, which is kept when another
    metric needs it (prec/recall/kid/...) or with ``keep_features``. ``dinov2``: the ``--dinov2`` weights
    (PATH or random:SEED) or a ``dinov2.DinoV2Features``; with it the default list gains fd_dinov2, and the
    reference must hold statistics of the same DINOv2 extractor."""

    metrics: Sequence[str] | str | None = None
    inception: Any = "fid-helper"
    batch_size: int = 50
    device: str = "auto"
    fid_method: str = "eig"
    is_mode: str = "adm"
    cache: bool | str | Path = True
    kid_subset_size: int | None = None
    kid_subsets: int | None = None
    allow_partial: bool = False
    progress: bool | None = None
    uncertainty_subsets: int = UNCERTAINTY_SUBSETS
    keep_features: bool = False
    dinov2: Any = None


def evaluate_samples(
    samples, reference, options: EvalOptions | None = None, *, labels: np.ndarray | None = None
) -> EvalResult | None:
    """Metrics of ``samples`` against ``reference`` (an ADM-format npz, ours or OpenAI's, or a loaded
    ``Reference``), measured as ``options`` say (``EvalOptions``; None: the defaults).

    ``samples``: an ADM npz, a shards folder, a uint8 ``[N,H,W,3]`` array or an iterable of such
    batches (``harness.api`` accepts torch tensors too). ``labels`` (int [N]) describe in-memory samples
    for the class-balance provenance; files carry their own.
    Under ``torchrun`` (torch.distributed initialised) every rank calls this: the sample features are
    extracted across the ranks and rank 0 alone computes and returns the result; other ranks get None.
    The stages, in order: choose the metrics the inputs can give, build the extractors, extract the
    samples' features, read their labels, compute each metric from the table, then the uncertainty,
    the protocol checks and the provenance.
    """
    o = options or EvalOptions()
    wanted = _wanted(o)  # unknown names fail before any file is read
    t0 = time.perf_counter()
    size = _check_samples_file(samples)
    run = _Run(samples, reference if isinstance(reference, Reference) else load_reference(reference), o)
    todo, skipped = run.choose_metrics(wanted)
    info = describe_pipeline(run.weights)
    run.warnings += check_compatible(run.ref, info, size)
    run.build_extractors(todo)
    if not run.extract_samples(todo):
        return None  # a helper rank under torchrun
    check_compatible(run.ref, info, run.feats.image_size)  # shards and batches: size known only now
    t_feat = time.perf_counter()
    if run.feats.n < 2:
        raise UserError(f"{_name(run.samples)}: need at least 2 samples for a covariance, got {run.feats.n}")
    labels = run.sample_labels(labels)
    label_info = prov.label_summary(labels)
    if label_info.get("class_sorted"):
        run.warnings.append(
            "samples look class-sorted: ADM-mode IS will collapse (interleave classes, i % num_classes)"
        )
    out, extra = run.compute(todo)
    spreads, why_none = _uncertainty(out, extra, run.feats, run.stats, o.fid_method, o.uncertainty_subsets)
    t_end = time.perf_counter()
    comparable, findings, provenance = run.provenance(info, wanted, todo, skipped, labels, label_info, extra, why_none)
    timings = {"features_s": round(t_feat - t0, 3), "metrics_s": round(t_end - t_feat, 3)}
    return EvalResult(
        {m.name: out.get(m.name) for m in wanted},
        provenance,
        comparable,
        run.warnings,
        timings,
        findings=[f.to_dict() for f in findings],
        uncertainty=spreads,
    )


def _wanted(o: EvalOptions) -> tuple:
    """The metric table's entries the options name (None: the default list, plus fd_dinov2 with DINOv2)."""
    wanted = table.parse(o.metrics)
    if o.metrics is None and o.dinov2 is not None:
        wanted += (table.get("fd_dinov2"),)
    return wanted


class _Run:
    """One evaluation's state between its stages: inputs, extractors, features read so far, warnings."""

    def __init__(self, samples, ref: Reference, o: EvalOptions):
        self.samples, self.ref, self.o = samples, ref, o
        built = isinstance(o.inception, InceptionExtractor)
        self.weights = o.inception.weights if built else resolve_weights(o.inception)
        self.stats = {
            k: getattr(ref, k)
            for k in ("mu", "sigma", "mu_s", "sigma_s", "mu_dinov2", "sigma_dinov2")
            if getattr(ref, k) is not None
        }
        self.warnings: list[str] = []
        self.extractors: dict[str, Any] = {}
        self.sample_feats: dict[str, Any] = {}
        self.ref_feats: dict[str, Any] = {}
        self.modes: dict[str, str] = {}
        self.world = 1

    @property
    def feats(self):
        return self.sample_feats["inception"]

    def choose_metrics(self, wanted):
        """``(todo, skipped)``: a default metric the inputs cannot give is skipped with a note; one asked
        for by name is an input error (IS without a classifier only skips)."""
        explicit = self.o.metrics is not None
        skipped: dict[str, str] = {}
        for m in wanted:
            why = table.unavailable(
                m, stats=list(self.stats), reference_images=self.ref.n_images, has_logits=self.weights.has_logits
            )
            if why is None:
                continue
            if explicit and not m.needs_logits:  # asked for by name and impossible: an input error
                raise InputFileError(self.ref.path, f"{why}: drop {m.name} from --metrics (or use a fuller reference)")
            skipped[m.name] = why
            self.warnings.append(f"{m.name} unavailable, skipped ({why})")
        return [m for m in wanted if m.name not in skipped], skipped

    def build_extractors(self, todo) -> None:
        o = self.o
        built = isinstance(o.inception, InceptionExtractor)
        extractor = o.inception if built else InceptionExtractor(self.weights, o.device)
        self.extractors["inception"] = extractor
        if any(m.features == "dinov2" for m in todo):
            self.extractors["dinov2"] = _dinov2_extractor(o.dinov2, extractor.device, self.ref)
        for name in sorted({m.features for m in todo} - set(self.extractors)):
            self.extractors[name] = table.build_extractor(name, extractor.device)
        if any(m.features != "inception" for m in todo) and not (
            _is_path(self.samples) or isinstance(self.samples, np.ndarray)
        ):
            self.samples = _materialise(self.samples)  # an iterator can be read once; several extractors read it

    def extract_samples(self, todo) -> bool:
        """The samples' Inception features (and, under torchrun, every other extractor's: all ranks take part
        in each extraction in one order). False on the ranks other than 0, which stop here."""
        o = self.o
        # Whole pool3 arrays only for metrics that need more than the streamed float64 mean/covariance.
        keep_pool = any(m.features == "inception" and m.layer == "pool" and not m.from_statistics for m in todo)
        keep_pool = keep_pool or (o.keep_features and o.uncertainty_subsets > 0 and any(m.name == "fid" for m in todo))
        rank, self.world = _rank_world()
        kw = {"cache": o.cache, "name": "samples", "allow_partial": o.allow_partial, "progress": o.progress}
        feats = _sample_features(
            self.samples, self.extractors["inception"], o.batch_size, self.modes, "inception", keep_pool=keep_pool, **kw
        )
        early: dict[str, Any] = {}
        if self.world > 1:
            for fname in sorted({m.features for m in todo} - {"inception"}):
                early[fname] = _sample_features(
                    self.samples, self.extractors[fname], o.batch_size, self.modes, fname, **kw
                )
            if rank != 0:
                return False
        self.warnings.extend(feats.notes)
        if (feats.selection or {}).get("partial"):
            self.warnings.append(
                f"PARTIAL: {feats.n} samples of an incomplete folder evaluated (--allow-partial): {feats.selection}"
            )
        self.sample_feats = {"inception": feats, **early}
        for f in early.values():
            self.warnings.extend(f.notes)
        return True

    def sample_labels(self, labels):
        """The caller's labels, else a sampling folder's shards' or the npz's ``labels``; checked against N."""
        feats, samples = self.feats, self.samples
        if labels is None and feats.labels is not None:
            labels = feats.labels
        if labels is None and _is_path(samples) and Path(samples).is_file():
            labels = npz_io.load_labels_npz(samples)
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape[0] != feats.n:
                raise InputFileError(_name(samples), f"labels has {labels.shape[0]} entries for {feats.n} images")
        return labels

    # feature access for the metric table's compute functions (each extraction once, then kept)
    def sample_layer(self, features: str, layer: str):
        if features not in self.sample_feats:
            o = self.o
            self.sample_feats[features] = extract_features(
                self.samples,
                self.extractors[features],
                o.batch_size,
                cache=o.cache,
                name="samples",
                allow_partial=o.allow_partial,
                progress=o.progress,
            )
            self.warnings.extend(self.sample_feats[features].notes)
        return getattr(self.sample_feats[features], layer)

    def reference_layer(self, features: str, layer: str):
        if features not in self.ref_feats:
            o = self.o
            self.ref_feats[features] = extract_features(
                self.ref.path,
                self.extractors[features],
                o.batch_size,
                cache=o.cache,
                name="reference arr_0",
                progress=o.progress,
            )
            self.warnings.extend(self.ref_feats[features].notes)
        return getattr(self.ref_feats[features], layer)

    def sample_statistics(self, features: str, layer: str):
        if features not in self.sample_feats:
            self.sample_layer(features, layer)
        return self.sample_feats[features].statistics(layer)

    def compute(self, todo) -> tuple[dict[str, float | None], dict[str, Any]]:
        """Each metric's compute function from the table: ``({name: value}, extra provenance)``."""
        o = self.o
        options = {
            "fid_method": o.fid_method,
            "is_mode": o.is_mode,
            "kid_subset_size": o.kid_subset_size,
            "kid_subsets": o.kid_subsets,
            "device": self.extractors["inception"].device,
            "wanted": tuple(m.name for m in todo),
        }
        inputs = table.MetricInputs(
            self.sample_layer, self.reference_layer, self.stats, options, sample_statistics=self.sample_statistics
        )
        out: dict[str, float | None] = {}
        extra: dict[str, Any] = {}
        for m in todo:
            result = m.compute(inputs)
            out[m.name] = result.pop(m.name)
            extra.update(result)
        return out, extra

    def provenance(self, info, wanted, todo, skipped, labels, label_info, extra, why_none):
        """``(paper_comparable, findings, provenance)``: the paper rule, the known-mistake guards and the
        batch-size check decide comparability; the provenance says how every number was made."""
        feats, ref, samples, o = self.feats, self.ref, self.samples, self.o
        comparable, reasons = prov.paper_comparable(info["weights"], feats.n, "uint8", label_info, ref.kind)
        facts = _protocol_facts(samples, feats, labels, ref)
        findings = guards.run_guards(facts)
        batch_check = None if feats.from_cache else _batch_size_check(samples, self.extractors["inception"])
        if batch_check is not None:
            findings = findings + batch_check[0]
            extra["batch_size_check"] = batch_check[1]
        comparable = comparable and guards.paper_comparable(findings)
        sample_sha, _ = _describe(samples, feats)
        names = {m.name for m in wanted}
        provenance = {
            "weights": info["weights"],
            "extractor": info["extractor"],
            "resize": info["resize"],
            "sfid_layer": info["sfid_layer"],
            "fid_method": o.fid_method if names & {"fid", "sfid"} else None,
            "is_mode": o.is_mode if "is" in names else None,
            "samples": {
                "path": _name(samples),
                "sha256": sample_sha,
                "n": feats.n,
                "image_size": list(feats.image_size),
                "dtype": "uint8",
                **label_info,
                "selection": feats.selection,
            },
            "reference": {**ref.describe(), "metadata": ref.metadata},
            "feature_extraction": {"world_size": self.world, "samples": self.modes},
            "pr_k": None,
            "skipped": skipped,
            "dinov2": self.extractors["dinov2"].describe() if "dinov2" in self.extractors else None,
            "metric_features": {m.name: f"{m.features}:{m.layer}" for m in todo},
            "not_comparable_because": reasons,
            "protocol_facts": eval_facts.printable(facts),
            "protocol_findings": [f.to_dict() for f in findings],
            "uncertainty_skipped": why_none,
            **extra,
        }
        return comparable, findings, provenance


def _rank_world() -> tuple[int, int]:
    from harness.metrics.distributed import rank_world

    return rank_world()


class _CacheMiss(Exception):
    pass


class _CacheOnly:
    """An extractor that only lets ``extract_features`` answer from the cache (a call means a miss)."""

    def __init__(self, extractor):
        self.weights, self.device = extractor.weights, extractor.device

    def __call__(self, batch):
        raise _CacheMiss


class _Replay:
    """Serves features already extracted (across ranks) to ``extract_features``, batch by batch in order, so
    rank 0 streams the same float64 moments and writes the cache entry exactly as one process would."""

    def __init__(self, extractor, rows: dict[str, np.ndarray]):
        self.weights, self.device, self.rows, self.at = extractor.weights, extractor.device, rows, 0

    def __call__(self, batch):
        b = len(batch)
        out = {k: v[self.at : self.at + b] for k, v in self.rows.items()}
        self.at += b
        return out


def _sample_features(samples, extractor, batch_size: int, modes: dict, key: str, **kw):
    """``extract_features`` of the samples; under torchrun (world > 1) the network's work is split over the
    ranks (``distributed.extract_sharded``) and only rank 0 returns features (and writes the cache, once).
    ``modes[key]`` records how: single | cache | sharded | rank0 (a source extract_sharded cannot split)."""
    rank, world = _rank_world()
    if world == 1:
        modes[key] = "single"
        return extract_features(samples, extractor, batch_size, **kw)
    import torch.distributed as dist

    from harness.metrics.distributed import extract_sharded

    hit = None
    if rank == 0 and kw.get("cache", True) is not False:
        try:
            hit = extract_features(samples, _CacheOnly(extractor), batch_size, **{**kw, "progress": False})
        except _CacheMiss:
            hit = None
    flag = [hit is not None]
    dist.broadcast_object_list(flag, src=0)
    if flag[0]:
        modes[key] = "cache"
        return hit if rank == 0 else None
    shardable = isinstance(samples, np.ndarray) or (_is_path(samples) and Path(samples).is_file())
    if not shardable:  # folders and batches: rank 0 alone (gather the folder into an npz to split it)
        modes[key] = "rank0"
        return extract_features(samples, extractor, batch_size, **kw) if rank == 0 else None
    rows = extract_sharded(samples, extractor, batch_size)
    modes[key] = "sharded"
    if rank != 0:
        return None
    return extract_features(samples, _Replay(extractor, rows), batch_size, **kw)


def _dinov2_extractor(dinov2: Any, device: Any, ref: Reference):
    """The DINOv2 features extractor, refused when the reference's DINOv2 statistics came from another one."""
    from harness.metrics import dinov2 as dinov2_mod

    if not isinstance(dinov2, dinov2_mod.DinoV2Features):
        dinov2 = table.build_extractor("dinov2", device, weights=dinov2)
    dinov2_mod.check_reference_meta(ref.metadata, dinov2.extractor, ref.path)
    return dinov2


def _uncertainty(values: dict, extra: dict, feats, stats: dict, fid_method: str, k: int) -> tuple[dict, dict]:
    """``({metric: {std, method, ...}}, {metric: why none})`` from features already in memory (no extraction)."""
    from harness.metrics.uncertainty import fid_subset_spread

    spreads: dict[str, dict] = {}
    why: dict[str, str] = {}
    if values.get("fid") is not None:
        if k < 2:
            why["fid"] = "disabled (uncertainty_subsets < 2)"
        elif feats.pool is None:
            why["fid"] = (
                "pool3 features not kept (add prec/recall/kid to the metrics, or keep_features / --uncertainty)"
            )
        elif feats.n < 2 * k:
            why["fid"] = f"{feats.n} samples: fewer than 2 per subset for k={k}"
        else:
            spreads["fid"] = fid_subset_spread(feats.pool, stats["mu"], stats["sigma"], k=k, method=fid_method)
    if values.get("kid") is not None and extra.get("kid_std") is not None:
        # torch-fidelity's std over its random (overlapping) subsets: a spread at the subset size, kept as is
        spreads["kid"] = {
            "std": float(extra["kid_std"]),
            "method": f"kid-subsets(s={extra.get('kid_subsets')},m={extra.get('kid_subset_size')},random,overlapping)",
            "scaling": "none (subset-size spread)",
        }
    return spreads, why


def _protocol_facts(samples, feats, labels, ref: Reference) -> dict[str, Any]:
    meta = ref.metadata or {}
    reference = {
        "kind": ref.kind,
        "split": meta.get("split"),
        "preprocessing": meta.get("preprocessing"),
        "path": str(ref.path),
    }
    record, folder_spec = eval_facts.sampling_run_files(samples)
    return eval_facts.build_facts(
        n=feats.n,
        labels=labels,
        reference=reference,
        image_size=feats.image_size,
        record=record,
        folder_spec=folder_spec,
    )


BATCH_CHECK_IMAGES = 4


def _batch_size_check(samples, extractor):
    """Once per extraction, on the first few images: do the features depend on the batch size? (a known source
    of wrong numbers in upstream threads). None where the slice is not cheap to read again (iterables, folders)."""
    if isinstance(samples, np.ndarray):
        head = samples[:BATCH_CHECK_IMAGES]
    elif _is_path(samples) and Path(samples).is_file():
        head = next(npz_io.iter_npz_batches(Path(samples), BATCH_CHECK_IMAGES), None)
    else:
        return None
    if head is None or len(head) < 2:
        return None
    return guards.batch_size_check(extractor, np.ascontiguousarray(head), (1, len(head)))


def _materialise(batches) -> np.ndarray:
    parts = [np.asarray(b) for b in batches]
    if not parts:
        raise UserError("samples: the iterable yielded no batches")
    return np.concatenate(parts)


def _name(samples) -> str:
    if _is_path(samples):
        return str(samples)
    if isinstance(samples, np.ndarray):
        return f"array{list(samples.shape)}"
    return f"<{type(samples).__name__} of batches>"


def _describe(samples, feats) -> tuple[str | None, str]:
    from harness.core.io import sha256_file
    from harness.metrics.features import describe_source

    if _is_path(samples) and Path(samples).is_file():
        return sha256_file(samples), f"npz:{samples}"
    if _is_path(samples) and Path(samples).is_dir():  # the folder as resolved (a partial prefix, say)
        return getattr(feats, "input_sha256", None), f"folder:{samples}"
    if isinstance(samples, np.ndarray):
        return describe_source(samples)
    return getattr(feats, "input_sha256", None), _name(samples)
