"""Suites: a YAML naming a protocol, labelled entries (models with overrides, optional sweeps), the
inputs they need and the metrics to compute.

``alitok-bench run NAME|FILE.yaml`` expands the entries (``harness.suites.entries``) and runs each
into ``OUT/<label>/``: sampling (resumable, same folder layout as ``sample``) and evaluation when the
suite lists metrics and a reference, or a tokenizer reconstruction for ``task: recon`` entries. Each
run writes one record whose ``spec`` carries its label, variant and sweep point. A run whose inputs
are missing (checkpoint, reference, Inception weights, dataset), or whose plugin module cannot be
imported yet, gets a ``skipped`` record naming what is missing and where it comes from; every other
error stops the run.

Under ``torchrun`` every rank runs the suite: each sampling entry is sampled across the ranks (the
shards are those of one process) and its metrics extracted across them (``harness.metrics.distributed``);
rank 0 alone gathers, builds an embedded reference, reconstructs ``task: recon`` entries, writes the
records and the summary. The other ranks write nothing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from harness.core import config
from harness.runs.specs import RunSpec
from harness.suites.entries import ExpandedEntry, SuiteEntry, SuiteInput, expand, missing_inputs, runnable

SUITE_DIR = Path(__file__).parent
EMBEDDED_REFERENCE = "embedded:val"
RECON_METRICS = ("rfid", "psnr", "ssim", "codebook_usage")
RECON_PER_CLASS = 32  # embedded recon sources: val crops per class (as `make tiny-records`)


@dataclasses.dataclass(frozen=True)
class SuiteSpec:
    name: str
    protocol: str
    entries: tuple[SuiteEntry, ...]
    inputs: tuple[SuiteInput, ...] = ()  # files the suite needs, with where each comes from
    description: str = ""
    num_samples: int | None = None  # overrides the suite protocol's N (entries with their own protocol keep theirs)
    metrics: tuple[str, ...] = ()
    reference: str | None = None  # a reference-stats npz, or "embedded:val"
    reference_per_class: int = 20  # embedded reference: val crops per class (seed 0)
    inception: str = "fid-helper"  # weights tier for the metrics (see harness.metrics)
    kid_subset_size: int | None = None  # KID images per subset (None: torch-fidelity's 1000; must be <= N)


SUITE_KEYS = tuple(f.name for f in dataclasses.fields(SuiteSpec))


def check_suite(suite: SuiteSpec, source: str = "suite") -> SuiteSpec:
    """Metric names come from the metric table and labels must expand uniquely: a typo fails
    before any sampling starts."""
    from harness.metrics import table

    try:
        table.parse(sample_metrics(suite)) if sample_metrics(suite) else None
    except table.MetricError as e:
        raise config.ConfigError(f"{source}: metrics: {e}") from None
    if suite.kid_subset_size is not None and suite.kid_subset_size < 2:
        raise config.ConfigError(f"{source}: kid_subset_size must be >= 2, got {suite.kid_subset_size}")
    if not suite.entries:
        raise config.ConfigError(f"{source}: entries: the suite lists no entries")
    try:
        expand(suite.entries)
    except config.ConfigError as e:
        raise config.ConfigError(f"{source}: {e}") from None
    return suite


def sample_metrics(suite: SuiteSpec) -> list[str]:
    """The metrics computed on samples (recon entries always compute RECON_METRICS themselves)."""
    return [m for m in suite.metrics if m not in RECON_METRICS]


def load_suite_file(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SuiteSpec:
    data = apply_suite_overrides(config.load_yaml(path), overrides)
    try:
        suite = config.from_dict(SuiteSpec, data)
    except config.ConfigError as e:
        raise config.ConfigError(f"{path}: {e}") from None
    return with_fetched_files(check_suite(suite, str(path)))


ENTRY_ONLY_KEYS = ("model", "task", "seed", "variant", "source", "sweep")  # keys of an entry, not of a suite


def apply_suite_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """``--set`` on a suite: suite keys, ``entries.N.KEY=V`` by position, or ``LABEL.KEY=V`` by an entry's
    label (``alitok-b.model.checkpoint=PATH``). A per-entry key given at the top (``model.checkpoint``)
    is refused with the two per-entry forms, since a suite has one model per entry."""
    entries = data.get("entries") if isinstance(data.get("entries"), list) else []
    labels = [e.get("label") if isinstance(e, dict) else None for e in entries]
    rewritten = []
    for item in overrides:
        key, sep, value = item.partition("=")
        head, dot, rest = key.strip().partition(".")
        if sep and dot and head in labels and head not in SUITE_KEYS:
            key = f"entries.{labels.index(head)}.{rest}"
        elif sep and head in ENTRY_ONLY_KEYS:
            first = next((lab for lab in labels if lab), "LABEL")
            raise config.ConfigError(
                f"--set {item!r}: a suite has one {head} per entry; set it per entry: "
                f"--set entries.0.{key.strip()}={value} or --set {first}.{key.strip()}={value} "
                f"(labels: {', '.join(str(lab) for lab in labels) or 'none'})"
            )
        rewritten.append(f"{key}{sep}{value}")
    return config.apply_overrides(data, rewritten)


def with_fetched_files(suite: SuiteSpec) -> SuiteSpec:
    """A reference or Inception file given by its official name, and every checkpoint an entry leaves
    unset, point into the weights root (``alitok-bench fetch``, harness/fetch/), each declared as an input
    whose source is the fetch command, so ``validate`` and skipped records say what to run."""
    from harness.fetch import catalog, store
    from harness.fetch.needs import official_name, with_official_files

    def place(p: str | None) -> str | None:
        return str(store.path_of(p)) if p in catalog.FILES and not Path(p).exists() else p

    entries = tuple(
        dataclasses.replace(e, model=with_official_files(e.model, only_present=False), reference=place(e.reference))
        for e in suite.entries
    )
    suite = dataclasses.replace(
        suite, entries=entries, reference=place(suite.reference), inception=place(suite.inception) or suite.inception
    )
    used = [suite.reference, suite.inception] + [
        p
        for e in entries
        for p in (e.model.checkpoint, e.model.tokenizer_checkpoint, e.reference, e.model.options.get("latent_stats"))
    ]
    declared = {i.path for i in suite.inputs}
    added = []
    for path in dict.fromkeys(p for p in used if isinstance(p, str)):
        name = official_name(path)
        if name and path not in declared:
            what = catalog.FILES[name].what if name in catalog.FILES else f"official folder {name}"
            added.append(
                SuiteInput(
                    path, what, f"`alitok-bench fetch {name.rstrip('/')}` (or: alitok-bench fetch --suite {suite.name})"
                )
            )
    return dataclasses.replace(suite, inputs=suite.inputs + tuple(added)) if added else suite


def demo() -> SuiteSpec:
    return load_suite_file(SUITE_DIR / "demo.yaml")


def get_suite(name_or_path: str, overrides: list[str] | tuple[str, ...] = ()) -> SuiteSpec:
    """A suite file, a registered suite, or a YAML shipped in harness/suites/ (by its stem)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return load_suite_file(p, overrides)
    from harness.core.registry import load_plugins, suites

    load_plugins()
    if name_or_path not in suites and (SUITE_DIR / f"{name_or_path}.yaml").is_file():
        return load_suite_file(SUITE_DIR / f"{name_or_path}.yaml", overrides)
    target = suites.get(name_or_path)
    suite = target() if callable(target) and not isinstance(target, SuiteSpec) else target
    if overrides:
        suite = config.from_dict(SuiteSpec, apply_suite_overrides(config.to_dict(suite), overrides))
    return with_fetched_files(check_suite(suite, f"suite {name_or_path!r}"))


def shipped_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def plugin_missing(name: str, kind: str = "generators") -> str | None:
    """Why a model's plugin module is absent (not written or not installed yet), else None.

    Only a missing plugin module (or its package) counts; an ImportError raised inside an existing
    plugin is a bug and propagates.
    """
    from harness.core import registry
    from harness.core.plugins import BUILTIN

    registry.load_plugins()
    target = BUILTIN.get(kind, {}).get(name)
    module = (target[0] if isinstance(target, (tuple, list)) else target or "").partition(":")[0]
    try:
        getattr(registry, kind).get(name)
    except ModuleNotFoundError as e:
        parts = module.split(".")
        if module and e.name not in {".".join(parts[: i + 1]) for i in range(len(parts))}:
            raise
        return f"{type(e).__name__}: {e}"
    except AttributeError as e:  # module exists but the factory is not written yet
        return f"factory not found ({e})"
    return None


# ---- what each run needs -------------------------------------------------------------------------
def run_protocol(suite: SuiteSpec, run: ExpandedEntry):
    """The run's protocol: its own or the suite's (with the suite's N), with the run's seed."""
    from harness.runs.protocols import get_protocol, with_overrides

    if run.protocol:
        protocol = get_protocol(run.protocol)
    else:
        protocol = with_overrides(get_protocol(suite.protocol), num_samples=suite.num_samples)
    return with_overrides(protocol, seed=run.seed)


def run_reference(suite: SuiteSpec, run: ExpandedEntry) -> str | None:
    return run.reference or suite.reference


def evaluates(suite: SuiteSpec, run: ExpandedEntry) -> bool:
    return run.task == "sample" and bool(sample_metrics(suite)) and bool(run_reference(suite, run))


def run_needs(suite: SuiteSpec, run: ExpandedEntry) -> tuple[str, ...]:
    """Suite-level files this run uses besides its own paths: the reference and Inception weights
    when it is evaluated (recon always extracts features)."""
    if run.task == "recon":
        return (suite.inception,)
    return (run_reference(suite, run), suite.inception) if evaluates(suite, run) else ()


def why_not_runnable(suite: SuiteSpec, run: ExpandedEntry, root: str | Path = ".") -> list[str]:
    """Missing files (with their source) and missing plugin modules; empty when the run can go."""
    lines = runnable(run, suite.inputs, tuple(p for p in run_needs(suite, run) if p), root)
    kind = "tokenizers" if run.task == "recon" else "generators"
    missing = plugin_missing(run.model.name, kind)
    if missing:
        lines.append(f"plugin {run.model.name!r} cannot be imported ({missing})")
    return lines


def suite_missing(suite: SuiteSpec, root: str | Path = ".") -> list[str]:
    """Everything the whole suite lacks, one line per file (validate prints it)."""
    runs = expand(suite.entries)
    extra = tuple(dict.fromkeys(p for r in runs for p in run_needs(suite, r) if p))
    return missing_inputs(runs, suite.inputs, extra, root)


# ---- running -------------------------------------------------------------------------------------
def is_main_process() -> bool:
    """Rank 0 under torchrun, or a process on its own (the test ``devices.init_distributed`` joins by)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return True
    return int(os.environ["RANK"]) == 0


def _reference(suite: SuiteSpec, reference: str, protocol, out: Path, device: str) -> str:
    if reference != EMBEDDED_REFERENCE:
        return reference
    from harness.core import devices
    from harness.data.embedded import natural_patches

    path = (
        out
        / "reference"
        / f"embedded-val-{protocol.image_size}px-{suite.reference_per_class}pc-{suite.inception.replace(':', '_')}.npz"
    )
    if is_main_process() and not path.is_file():  # the other ranks wait below for the file
        from harness.metrics.refstats import build_reference_from_images

        images, _ = natural_patches("val", protocol.image_size, suite.reference_per_class, seed=0)
        build_reference_from_images(
            images,
            path,
            inception=suite.inception,
            device=device,
            source_desc=f"embedded natural_patches(split=val, size={protocol.image_size}, "
            f"per_class={suite.reference_per_class}, seed=0)",
        )
    devices.wait_for_rank0()  # rank 0 extracted the reference's features alone
    return str(path)


def _skipped_record(suite: SuiteSpec, run: ExpandedEntry, reasons: list[str]):
    from harness.runs.records import RunRecord, code_info, env_info

    spec = {
        "model": config.to_dict(run.model),
        "task": run.task,
        "protocol": {"name": run.protocol or suite.protocol},
        **run.record_spec_fields(),
    }
    return RunRecord(
        kind="run",
        spec=spec,
        spec_hash=config.spec_hash(spec),
        model={"name": run.model.name},
        code=code_info(),
        env=env_info(),
        status="skipped",
        notes=[f"skipped: {r}" for r in reasons],
    )


def _evaluate(suite, run, samples, protocol, out, refs, device):
    """The suite's metrics of ``samples``; every rank calls it under torchrun (each extracts a share of the
    features) and rank 0 alone gets the result, the others None."""
    from harness.metrics.evaluate import EvalOptions, evaluate_samples

    key = (run_reference(suite, run), protocol.image_size)
    if key not in refs:  # one embedded reference per image size, built once
        refs[key] = _reference(suite, key[0], protocol, out, device)
    options = EvalOptions(
        metrics=sample_metrics(suite), inception=suite.inception, device=device, kid_subset_size=suite.kid_subset_size
    )
    return evaluate_samples(str(samples), refs[key], options)


def _sample_run(suite, run, folder, protocol, out, refs, *, device, dtype, tf32, force, progress):
    """Sample and evaluate (every rank takes part under torchrun): rank 0 gets the record and its line, the
    other ranks (None, "")."""
    from harness.core import devices
    from harness.sampling.record import sample_record
    from harness.sampling.runner import sample
    from harness.sampling.shards import SAMPLES
    from harness.speed.timing import load_check

    spec = RunSpec(run.model, protocol)
    started = time.time()
    load = load_check()  # before this entry's own work adds to the load average
    result = sample(spec, folder, device=device, dtype=dtype, tf32=tf32, force=force, progress=progress)
    if result.gathered is None:  # a helper rank: wait for rank 0's samples.npz, extract its share, write nothing
        devices.wait_for_rank0()  # rank 0 gathers alone (50k images at 256 px: ~10 GB written)
        if evaluates(suite, run):
            _evaluate(suite, run, folder / SAMPLES, protocol, out, refs, device)
        return None, ""
    if result.world_size > 1:
        devices.wait_for_rank0()  # samples.npz is gathered: the helper ranks may read it
    rec = dataclasses.replace(sample_record(result, started), kind="run", run_id="", created_at="")
    rec.spec = {**rec.spec, **run.record_spec_fields()}
    rec.speed = {  # noqa: V101 (written to the record's JSON)
        "images_per_s": result.images_per_s,
        "device": result.device,
        "dtype": dtype,
        "tf32": tf32,
        "note": "generate() time of newly sampled chunks (shard writes excluded); None when all chunks were reused",
        "measurement": "single pass",  # one unrepeated pass: a label for this run, not a benchmark
        **{k: load[k] for k in ("loadavg_1m", "cpu_count", "load_warning")},
    }
    if load["warning"] and result.images_per_s:
        rec.notes.append(f"speed: {load['warning']}")
    if evaluates(suite, run):
        t0 = time.time()
        ev = _evaluate(suite, run, result.gathered["path"], protocol, out, refs, device)
        rec.metrics = dict(ev.metrics)
        rec.metric_provenance = dict(ev.provenance)
        rec.paper_comparable = bool(ev.paper_comparable)
        rec.protocol_findings = list(ev.findings)
        rec.uncertainty = dict(ev.uncertainty)
        rec.notes += list(ev.warnings)
        rec.timings["metrics_s"] = round(time.time() - t0, 3)
    elif sample_metrics(suite):
        rec.notes.append("metrics: not computed (the suite names no reference)")
        rec.metrics = {m: None for m in sample_metrics(suite)}
    ips = result.images_per_s
    line = f"{result.gathered['num_samples']} samples -> {result.gathered['path']}" + (
        f" ({ips:.1f} images/s, single pass)" if ips else " (all chunks reused)"
    )
    if load["warning"] and ips:
        line += f"\n  warning: {load['warning']}"
    return rec, line


def sample_and_evaluate(suite, run, folder, protocol, out, *, device="auto", dtype="fp32", tf32=False):
    """One sampling entry as ``run_suite`` does it (sample or resume, gather, evaluate): the record and its line.
    The cluster evaluation job (``harness.suites.cluster.jobs``) calls it once the entry's shards are all on disk."""
    return _sample_run(
        suite, run, folder, protocol, out, {}, device=device, dtype=dtype, tf32=tf32, force=False, progress=False
    )


def _recon_run(suite, run, folder, protocol, *, device, progress):
    """The tokenizer over ``run.source`` (the first ``suite.num_samples`` images when the suite sets N)."""
    from harness.metrics.recon_run import run_recon

    rec, _ = run_recon(
        run.source,
        run.model.name,
        folder,
        checkpoint=run.model.checkpoint,
        options=dict(run.model.options),
        inception=suite.inception,
        device=device,
        image_size=protocol.image_size,
        per_class=RECON_PER_CLASS,
        limit=suite.num_samples,
        progress=progress,
    )
    rec.spec = {**rec.spec, "protocol": {"name": protocol.name}, **run.record_spec_fields()}
    rfid = rec.metrics.get("rfid")
    return rec, f"{rec.samples['n']} reconstructions, rFID {rfid:.3f}" if rfid is not None else "reconstructed"


def _protocol_block(rec) -> str:
    from harness.metrics import guards

    found = [guards.Finding(**f) for f in rec.protocol_findings]
    return guards.render_protocol_block(found, rec.metric_provenance.get("protocol_facts"))


def select(runs: list[ExpandedEntry], only: tuple[str, ...] = ()) -> list[ExpandedEntry]:
    if not only:
        return runs
    unknown = [o for o in only if not any(o in (r.label, r.parent) for r in runs)]
    if unknown:
        raise config.ConfigError(f"--only {unknown[0]!r}: no such label (labels: {', '.join(r.label for r in runs)})")
    return [r for r in runs if r.label in only or r.parent in only]


def run_suite(
    suite: SuiteSpec,
    out: str | Path,
    *,
    device: str = "auto",
    dtype: str = "fp32",
    tf32: bool = False,
    force: bool = False,
    progress: bool = True,
    only: tuple[str, ...] = (),
    root: str | Path = ".",
    echo=print,
):
    """Run every expanded entry of ``suite`` under ``out/<label>``; returns the summary DataFrame.

    ``only``: run just the runs with these labels or entry labels (a sweep's parent). Under torchrun, the
    ranks other than 0 take part in sampling and feature extraction only, and return None."""
    from harness.core import devices
    from harness.runs.records import load_records, write_record

    out = Path(out)
    main = is_main_process()
    refs: dict = {}
    blocks: list[str] = []
    for run in select(expand(suite.entries), only):
        folder = out / run.label
        reasons = why_not_runnable(suite, run, root)
        if reasons:
            if main:
                echo(f"{run.label}: skipped: " + "; ".join(reasons))
                write_record(_skipped_record(suite, run, reasons), folder, "run_record.json")
            continue
        protocol = run_protocol(suite, run)
        if run.task == "recon" and not main:
            devices.wait_for_rank0()  # rank 0 reconstructs alone
            continue
        if run.task == "recon":
            rec, line = _recon_run(suite, run, folder, protocol, device=device, progress=progress)
            write_record(rec, folder, "recon_record.json")
            devices.wait_for_rank0()
        else:
            rec, line = _sample_run(
                suite,
                run,
                folder,
                protocol,
                out,
                refs,
                device=device,
                dtype=dtype,
                tf32=tf32,
                force=force,
                progress=progress,
            )
            if rec is None:  # a helper rank
                continue
            if "protocol_facts" in rec.metric_provenance:
                blocks.append(f"{run.label}: {_protocol_block(rec)}")
            write_record(rec, folder, "run_record.json")
        stale = folder / ("run_record.json" if run.task == "recon" else "recon_record.json")
        stale.unlink(missing_ok=True)  # a skipped record left by an earlier attempt, now superseded
        echo(f"{run.label}: {line}")
    if not main:
        return None
    table = summary_table(load_records(out), suite)
    table.attrs["protocol"] = "\n".join(blocks)  # the known-mistake guard's blocks, printed under the table
    return table


def summary_table(df, suite: SuiteSpec):
    """label, model, N, images/s, metric columns, paper_comparable, status (one row per entry, suite order)."""
    import pandas as pd

    if df.empty:
        return df
    runs = expand(suite.entries)
    order = {r.label: i for i, r in enumerate(runs)}
    df = df[df["kind"].isin(["run", "recon"])]
    df = df[df["spec.label"].isin(order)] if "spec.label" in df else df.iloc[0:0]
    cols = {"spec.label": "label", "model.name": "model", "samples.n": "N", "speed.images_per_s": "images/s"}
    table = pd.DataFrame({new: df[old] if old in df else None for old, new in cols.items()})
    metrics = sample_metrics(suite) if any(r.task == "sample" for r in runs) else []
    metrics += [m for m in RECON_METRICS if any(r.task == "recon" for r in runs)]
    for m in metrics:
        table[m] = df[f"metrics.{m}"] if f"metrics.{m}" in df else None
    table["N"] = pd.to_numeric(table["N"]).astype("Int64")
    table["images/s"] = pd.to_numeric(table["images/s"]).round(1)
    table["paper_comparable"] = df["paper_comparable"]
    table["status"] = df["status"]
    return table.sort_values("label", key=lambda s: s.map(order)).reset_index(drop=True)
