"""Suites: a YAML naming one protocol, the models to sample with it, and the metrics to compute.

``alitok-bench run NAME|FILE.yaml`` samples every model into ``OUT/<model>/`` (resumable, same
folder layout as ``sample``), evaluates when the suite lists metrics and a reference, writes a
``run_record.json`` per model and prints one table. A model whose plugin module cannot be
imported (not written or not installed yet) is reported as skipped; every other error stops the run.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness import config
from harness.specs import ModelSpec, RunSpec

SUITE_DIR = Path(__file__).with_name("suites")
EMBEDDED_REFERENCE = "embedded:val"


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    name: str
    protocol: str
    models: tuple[ModelSpec, ...]
    description: str = ""
    num_samples: int | None = None
    metrics: tuple[str, ...] = ()
    reference: str | None = None          # a reference-stats npz, or "embedded:val"
    reference_per_class: int = 20         # embedded reference: val crops per class (seed 0)
    inception: str = "fid-helper"         # weights tier for the metrics (see harness.metrics)
    kid_subset_size: int | None = None    # KID images per subset (None: torch-fidelity's 1000; must be <= N)


def check_suite(suite: SuiteSpec, source: str = "suite") -> SuiteSpec:
    """Metric names come from the metric table; a typo fails before any sampling starts."""
    from harness.metrics import table

    try:
        table.parse(suite.metrics) if suite.metrics else None
    except table.MetricError as e:
        raise config.ConfigError(f"{source}: metrics: {e}") from None
    if suite.kid_subset_size is not None and suite.kid_subset_size < 2:
        raise config.ConfigError(f"{source}: kid_subset_size must be >= 2, got {suite.kid_subset_size}")
    return suite


def load_suite_file(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SuiteSpec:
    return check_suite(config.load(SuiteSpec, path, overrides), str(path))


def demo() -> SuiteSpec:
    return load_suite_file(SUITE_DIR / "demo.yaml")


def get_suite(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> SuiteSpec:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return load_suite_file(p, overrides)
    from harness.registry import load_plugins, suites

    load_plugins()
    target = suites.get(name_or_path)
    suite = target() if callable(target) and not isinstance(target, SuiteSpec) else target
    if overrides:
        suite = config.from_dict(SuiteSpec, config.apply_overrides(config.to_dict(suite), overrides))
    return check_suite(suite, f"suite {name_or_path!r}")


def _factory_missing(name: str) -> str | None:
    """Why a model's plugin module is absent (not written or not installed yet), else None.

    Only a missing plugin module (or its package) counts; an ImportError raised inside an existing
    plugin is a bug and propagates.
    """
    from harness.plugins import BUILTIN
    from harness.registry import generators, load_plugins

    load_plugins()
    target = BUILTIN.get("generators", {}).get(name)
    module = (target[0] if isinstance(target, (tuple, list)) else target or "").partition(":")[0]
    try:
        generators.get(name)
    except ModuleNotFoundError as e:
        parts = module.split(".")
        if module and e.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise
        return f"{type(e).__name__}: {e}"
    except AttributeError as e:  # module exists but the factory is not written yet
        return f"factory not found ({e})"
    return None


def _reference(suite: SuiteSpec, protocol, out: Path, device: str) -> str | None:
    if suite.reference != EMBEDDED_REFERENCE:
        return suite.reference
    from harness.data.embedded import natural_patches

    path = out / "reference" / f"embedded-val-{protocol.image_size}px-{suite.reference_per_class}pc-{suite.inception.replace(':', '_')}.npz"
    if not path.is_file():
        from harness.metrics.refstats import build_reference_from_images

        images, _ = natural_patches("val", protocol.image_size, suite.reference_per_class, seed=0)
        build_reference_from_images(images, path, inception=suite.inception, device=device,
                                    source_desc=f"embedded natural_patches(split=val, size={protocol.image_size}, "
                                                f"per_class={suite.reference_per_class}, seed=0)")
    return str(path)


def run_suite(suite: SuiteSpec, out: str | Path, *, device: str = "auto", dtype: str = "fp32", tf32: bool = False,
              force: bool = False, progress: bool = True, echo=print):
    """Sample (and evaluate) every model of ``suite`` under ``out``; returns the summary DataFrame."""
    from harness.protocols import get_protocol, with_overrides
    from harness.records import RunRecord, code_info, env_info, load_records, write_record
    from harness.sampling.record import sample_record
    from harness.sampling.runner import sample

    out = Path(out)
    protocol = with_overrides(get_protocol(suite.protocol), num_samples=suite.num_samples)
    evaluate = suite.metrics and suite.reference
    reference = None
    for model in suite.models:
        spec = RunSpec(model, protocol)
        folder = out / model.name
        missing = _factory_missing(model.name)
        if missing:
            echo(f"{model.name}: skipped: plugin cannot be imported ({missing})")
            rec = RunRecord(kind="run", spec=config.to_dict(spec), spec_hash=config.spec_hash(spec),
                            model={"name": model.name}, code=code_info(), env=env_info(), status="skipped",
                            notes=[f"skipped: plugin cannot be imported ({missing})"])
            write_record(rec, folder)
            continue
        started = time.time()
        result = sample(spec, folder, device=device, dtype=dtype, tf32=tf32, force=force, progress=progress)
        rec = sample_record(result, started)
        rec = dataclasses.replace(rec, kind="run", run_id="", created_at="")
        rec.speed = {"images_per_s": result.images_per_s, "device": result.device, "dtype": dtype, "tf32": tf32,
                     "note": "generate() time of newly sampled chunks (shard writes excluded); None when all chunks were reused"}
        if evaluate:
            from harness.metrics.evaluate import evaluate_samples

            t0 = time.time()
            if reference is None:
                reference = _reference(suite, protocol, out, device)
            ev = evaluate_samples(result.gathered["path"], reference, metrics=list(suite.metrics),
                                inception=suite.inception, device=device, kid_subset_size=suite.kid_subset_size)
            rec.metrics = dict(ev.metrics)
            rec.metric_provenance = dict(ev.provenance)
            rec.paper_comparable = bool(ev.paper_comparable)
            rec.notes += list(ev.warnings)
            rec.timings["metrics_s"] = round(time.time() - t0, 3)
        elif suite.metrics:
            rec.notes.append("metrics: not computed (the suite names no reference)")
            rec.metrics = {m: None for m in suite.metrics}
        write_record(rec, folder, "run_record.json")
        ips = result.images_per_s
        echo(f"{model.name}: {result.gathered['num_samples']} samples -> {result.gathered['path']}"
             + (f" ({ips:.1f} images/s)" if ips else " (all chunks reused)"))
    return summary_table(load_records(out), suite)


def summary_table(df, suite: SuiteSpec):
    """model, N, images/s, metric columns, paper_comparable, status (one row per run record)."""
    import pandas as pd

    if df.empty:
        return df
    df = df[df["kind"] == "run"]
    cols = {"model.name": "model", "samples.n": "N", "speed.images_per_s": "images/s"}
    table = pd.DataFrame({new: df[old] if old in df else None for old, new in cols.items()})
    for m in suite.metrics:
        table[m] = df[f"metrics.{m}"] if f"metrics.{m}" in df else None
    table["N"] = pd.to_numeric(table["N"]).astype("Int64")
    table["images/s"] = pd.to_numeric(table["images/s"]).round(1)
    table["paper_comparable"] = df["paper_comparable"]
    table["status"] = df["status"]
    order = {m.name: i for i, m in enumerate(suite.models)}
    table = table[table["model"].isin(order)]
    return table.sort_values("model", key=lambda s: s.map(order)).reset_index(drop=True)
