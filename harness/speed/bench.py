"""Images/s from class labels to uint8 pixels, decode included, for several generators side by side.

Generators that implement ``harness.core.interfaces.PhasedGenerator`` get generation and decode timed
apart, and may be timed on the first ``steps_limit`` network calls only (all models, or per model): the
generation time is then scaled by ``total_steps / steps_limit`` and the figure is labelled
``extrapolated`` with the measured per-step time. That is exact for diffusion (every call has the same
shapes) and misjudges a KV-cached AR loop (its later steps attend over a longer cache; a run's fixed costs
land on the few measured steps), so a side-by-side run times the AR models in full and extrapolates only
the diffusion model. Models are interleaved repeat by repeat (A B A B ...) so a ratio between two models is
measured under the same machine load.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from typing import Any

import torch

from harness.core import devices
from harness.core.errors import UserError
from harness.core.interfaces import Generator, PhasedGenerator
from harness.nn.kernels import decode_attention
from harness.speed.calibration import Calibration
from harness.speed.timing import PeakMemory, Spread, Stopwatch, spread

DTYPES = ("fp32", "tf32", "bf16")
# auto: a generator's own default (oneDNN packed where it has it and it was measured faster on this CPU);
# onednn: packed wherever it exists; aten: PyTorch's own Linear
LINEAR_KERNELS = ("auto", "onednn", "aten")


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    batch_size: int = 64
    dtype: str = "fp32"  # fp32 | tf32 (fp32 storage, TF32 matmuls) | bf16 (autocast)
    cfg: bool = True  # False: cfg_scale 1.0 (no doubled batch)
    steps: int | None = None  # diffusion step count override; AR: fixed by the token count
    steps_limit: int | None = None  # time only this many network calls and extrapolate
    # per-model overrides of steps_limit, (registry name, limit): e.g. AR timed in full beside a diffusion
    # model timed on a few calls (a diffusion call costs the same at every step; an AR step grows with its cache)
    model_steps_limits: tuple[tuple[str, int], ...] = ()
    compile: bool = False
    kv_cache: bool = True  # AR: off = full recompute per step (ARGenerator); others record "n/a"
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    random_weights: bool = False
    linear: str = "auto"  # aten: PyTorch's own Linear (packing off), for before/after comparisons
    attention: str = "auto"  # sdpa: AR decode attention through PyTorch's SDPA (C kernel off)
    calibrate: bool = False  # time harness.speed.calibration before every repeat (CPU machine drift)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UserError(f"--dtype {self.dtype!r}: use one of {', '.join(DTYPES)}")
        if self.linear not in LINEAR_KERNELS:
            raise UserError(f"--linear {self.linear!r}: use one of {', '.join(LINEAR_KERNELS)}")
        if self.attention not in decode_attention.KERNELS:  # auto: the C kernel where it builds and wins here
            raise UserError(f"--attention {self.attention!r}: use one of {', '.join(decode_attention.KERNELS)}")
        for name in ("batch_size", "repeats"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise UserError(f"--warmup must be >= 0, got {self.warmup}")
        for name, limit in ((None, self.steps_limit), *self.model_steps_limits):
            if limit is not None and limit < 1:
                raise UserError(f"--steps-limit {name + '=' if name else ''}{limit}: must be >= 1")
        names = [name for name, _ in self.model_steps_limits]
        if len(set(names)) != len(names):
            raise UserError(f"--steps-limit: a model is named twice ({', '.join(names)})")
        if self.steps is not None and self.steps < 1:
            raise UserError(f"--steps must be >= 1, got {self.steps}")

    def steps_limit_for(self, model: str) -> int | None:
        """The network calls to time for the model registered as ``model`` (None: the full run)."""
        return dict(self.model_steps_limits).get(model, self.steps_limit)

    def factory_options(self) -> dict[str, Any]:
        """Options passed to a generator factory; defaults are left out so any factory accepts fp32."""
        opts: dict[str, Any] = {}
        if self.dtype == "bf16":
            opts["dtype"] = torch.bfloat16
        if self.dtype == "tf32":
            opts["tf32"] = True
        if self.compile:
            opts["compile"] = True
        if self.random_weights:
            opts["random_weights"] = True
        return opts

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# paper: the AliTok table's protocol (A800, fp32, batch 64, CFG on, decode included)
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"batch_size": [64], "dtype": "fp32", "cfg": True, "repeats": 3, "warmup": 1},
    "gpu-check": {"batch_size": [64], "dtype": "bf16", "cfg": True, "repeats": 3, "warmup": 1},
    "cpu-smoke": {
        "batch_size": [4],
        "dtype": "fp32",
        "cfg": True,
        "repeats": 3,
        "warmup": 1,
        "models": ["alitok-tiny"],
    },
}


def sampling_params(gen: Generator, settings: BenchSettings) -> tuple[Any, dict[str, Any]]:
    """The generator's official preset, with CFG off / the step count changed where asked;
    returns ``(params, applied)`` where ``applied`` records what each setting did ("n/a" if nothing)."""
    params = gen.default_sampling
    applied: dict[str, Any] = {}
    fields = {f.name for f in dataclasses.fields(params)} if dataclasses.is_dataclass(params) else set()
    if not settings.cfg:
        if "cfg_scale" not in fields:
            raise UserError(f"--no-cfg: {gen.name} has no cfg_scale in its sampling parameters")
        params = dataclasses.replace(params, cfg_scale=1.0)
    applied["cfg_scale"] = getattr(params, "cfg_scale", "n/a")
    if settings.steps is not None:
        if "steps" not in fields:
            applied["steps"] = "n/a"
        else:
            params = dataclasses.replace(params, steps=settings.steps)
    if "steps" in fields:
        applied["steps"] = params.steps
    applied.setdefault("steps", "n/a")
    kv = gen.info().get("kv_cache")  # ARGenerator: "static", or "off" once the runner switched it off
    applied["kv_cache"] = kv if kv and (settings.kv_cache or kv == "off") else "n/a"
    applied["linear_kernel"] = gen.linear_kernel() if hasattr(gen, "linear_kernel") else "n/a"
    applied["attention_kernel"] = gen.attention_kernel() if hasattr(gen, "attention_kernel") else "n/a"
    return params, applied


_NON_UNIFORM = (
    "; indicative only: this generator's later calls cost more than its first (or it does not say), "
    "and fixed per-run costs land on the measured calls; time it in full for ratios"
)


@dataclasses.dataclass
class ModelTimings:
    """Per-repeat seconds of one model at one batch size."""

    name: str
    batch_size: int
    phased: bool
    extrapolated: bool
    steps_measured: int | None = None
    total_steps: int | None = None
    generation: list[float] = dataclasses.field(default_factory=list)  # full-run seconds (scaled if extrapolated)
    step_calls: list[float] = dataclasses.field(default_factory=list)  # measured seconds of the limited steps
    decode: list[float] = dataclasses.field(default_factory=list)
    total: list[float] = dataclasses.field(default_factory=list)
    peak_memory_mib: float | None = None
    peak_memory_kind: str | None = None
    applied: dict[str, Any] = dataclasses.field(default_factory=dict)
    calibration: list[float] = dataclasses.field(default_factory=list)  # seconds, just before each repeat
    uniform_step_cost: bool | None = None  # the generator's own word (harness.core.interfaces.PhasedGenerator)
    sampling: dict[str, Any] | None = None  # the sampling parameters of the timed runs
    info: dict[str, Any] = dataclasses.field(default_factory=dict)  # the generator's info() at setup
    built_per_run: bool = False  # --low-memory: the model was built before each run (untimed) and freed after
    network_calls: dict[str, Any] | None = None  # the generator's per-image counts, this code's and the official one's

    def summary(self) -> dict[str, Any]:
        tot = spread(self.total)
        out: dict[str, Any] = {
            "images_per_s": self.batch_size / tot.median,
            "s_per_image": tot.median / self.batch_size,
            "batch_size": self.batch_size,
            "repeats": len(self.total),
            "total_s": tot.to_dict(),
            "images_per_s_range": [self.batch_size / tot.max, self.batch_size / tot.min],
            "phases_apart": self.phased,
            "extrapolated": self.extrapolated,
            "peak_memory_mib": self.peak_memory_mib,
            "peak_memory_kind": self.peak_memory_kind,
        }
        if self.network_calls is not None:
            out["network_calls"] = self.network_calls
        if self.calibration:  # each repeat in units of the machine calibration timed just before it
            out["calibration_s"] = spread(self.calibration).to_dict()
            out["total_calibrations"] = spread([t / c for t, c in zip(self.total, self.calibration)]).to_dict()
        if self.phased:
            out["generation_s"] = spread(self.generation).to_dict()
            out["decode_s"] = spread(self.decode).to_dict()
        if self.extrapolated:
            step = spread([t / self.steps_measured for t in self.step_calls])
            out.update(
                {
                    "steps_measured": self.steps_measured,
                    "total_steps": self.total_steps,
                    "per_step_s": step.to_dict(),
                    "uniform_step_cost": self.uniform_step_cost,
                    "method": f"generation = median per-step time x {self.total_steps} steps "
                    f"(measured {self.steps_measured}), decode measured in full"
                    + ("" if self.uniform_step_cost else _NON_UNIFORM),
                }
            )
        return out

    def spread(self) -> Spread:
        return spread(self.total)


class _Runner:
    """One model at one batch size: one call of ``repeat()`` = one timed repeat."""

    def __init__(
        self,
        source: Generator | Callable[[], Generator],
        settings: BenchSettings,
        device: torch.device,
        calibration: Calibration | None = None,
        name: str | None = None,
    ):
        self.settings, self.device = settings, torch.device(device)
        self.calibration = calibration
        # a factory instead of a generator: build the model for each run and free it after (--low-memory)
        self._make = (lambda: source) if isinstance(source, Generator) else source
        gen = self._build()
        self.gen: Generator | None = gen if isinstance(source, Generator) else None  # None: built per run
        self.params, applied = sampling_params(gen, settings)
        self.labels = torch.arange(settings.batch_size) % gen.num_classes
        self.watch = Stopwatch(self.device)
        self.phased = isinstance(gen, PhasedGenerator)
        self.steps_limit = limit = settings.steps_limit_for(name or gen.name)
        total = gen.total_steps(self.params) if self.phased else None
        if limit is not None and self.phased and total is None:
            raise UserError(
                f"--steps-limit: {gen.name}'s solver is adaptive (its call count is known only after "
                "a run); time it in full without --steps-limit"
            )
        self.extrapolate = bool(self.phased and limit is not None and limit < total)
        if self.extrapolate and isinstance(getattr(gen, "kv_cache", None), bool) and not settings.kv_cache:
            raise UserError(
                "--steps-limit with --no-kv-cache: without a cache a step costs more the later it "
                "comes, so the first steps do not scale; time the full run"
            )
        if limit is not None and not self.phased:
            raise UserError(
                f"--steps-limit: {gen.name} has no run_steps/total_steps hooks (harness.core.interfaces."
                "PhasedGenerator); time it in full without --steps-limit"
            )
        self.timings = ModelTimings(
            gen.name,
            settings.batch_size,
            self.phased,
            self.extrapolate,
            limit if self.extrapolate else None,
            total,
            applied=applied,
            uniform_step_cost=getattr(gen, "uniform_step_cost", None),
            sampling=self.params.to_dict() if hasattr(self.params, "to_dict") else None,
            info=gen.info(),
            built_per_run=self.gen is None,
            network_calls=(gen.network_call_counts(self.params) if hasattr(gen, "network_call_counts") else None),
        )
        self._count = 0

    def _build(self) -> Generator:
        """The generator, set to the settings' kernels and KV-cache switch."""
        gen, s = self._make(), self.settings
        if hasattr(gen, "packed_linear"):
            gen.packed_linear = {"auto": "auto", "onednn": True, "aten": False}[s.linear]
        if hasattr(gen, "attention_kernel"):
            gen.attention = s.attention
        if isinstance(getattr(gen, "kv_cache", None), bool):
            gen.kv_cache = s.kv_cache
        return gen

    def _generator(self) -> Generator:
        return self.gen if self.gen is not None else self._build()

    def _drop(self) -> None:
        if self.gen is None:  # a model built for one run: free it (and any reference cycle) before the next
            gc.collect()

    def _rng(self) -> torch.Generator:
        self._count += 1
        return torch.Generator().manual_seed(self.settings.seed + self._count)

    def once(self, gen: Generator) -> tuple[float, float | None, float | None, Any]:
        """``(total, generation, step_calls, images)`` seconds of one run. A generator's ``prepare()`` (weight
        packing) runs before the clock starts; its ``release()`` after the run frees packed weights and KV
        caches, so models interleaved in one process hold those one at a time (the KV cache is allocated
        inside the timed run)."""
        if hasattr(gen, "prepare"):
            gen.prepare()
        try:
            # TF32 is a process-global switch: set for this model's call only (a bf16/fp32 neighbour keeps its own)
            with devices.tf32(self.settings.dtype == "tf32"):
                labels, params, rng = self.labels, self.params, self._rng()
                if not self.phased:
                    t, images = self.watch.time(lambda: gen.generate(labels, rng, params))
                    return t, None, None, images
                if self.extrapolate:
                    n = self.steps_limit
                    t_steps, codes = self.watch.time(lambda: gen.run_steps(labels, rng, params, n))
                    t_gen = t_steps * self.timings.total_steps / n
                else:
                    t_steps = None
                    t_gen, codes = self.watch.time(lambda: gen.generate_codes(labels, rng, params))
                t_dec, images = self.watch.time(lambda: gen.decode_codes(codes))
                return t_gen + t_dec, t_gen, t_steps, (images, t_dec)
        finally:
            if hasattr(gen, "release"):
                gen.release()

    def warm(self) -> None:
        if not self.settings.warmup:
            return
        for i in range(self.settings.warmup):
            gen = self._generator()  # built before the memory watch: its weights are not the run's peak
            with PeakMemory(self.device) as mem:
                self.once(gen)
            del gen
            self._drop()
            if i == 0:
                peak = mem
        # where the CPU peak cannot be reset (cpu_peak_rss_growth: a process high-water mark) only the first
        # run of a model shows its memory, so the warm-up's stands
        self.timings.peak_memory_mib, self.timings.peak_memory_kind = peak.mib, peak.kind

    def repeat(self) -> None:
        if self.calibration is not None:
            self.timings.calibration.append(self.calibration.seconds())
        gen = self._generator()
        with PeakMemory(self.device) as mem:
            total, t_gen, t_steps, out = self.once(gen)
        if mem.kind != "cpu_peak_rss_growth" or self.timings.peak_memory_mib is None:
            self.timings.peak_memory_mib = max(self.timings.peak_memory_mib or 0.0, mem.mib)
            self.timings.peak_memory_kind = mem.kind
        t = self.timings
        t.total.append(total)
        if self.phased:
            images, t_dec = out
            t.generation.append(t_gen)
            t.decode.append(t_dec)
            if t_steps is not None:
                t.step_calls.append(t_steps)
        else:
            images = out
        _check_output(gen, images, self.settings.batch_size)
        del gen, images, out
        self._drop()


def _check_output(gen: Generator, images: Any, batch: int) -> None:
    # a benchmark of something that did not produce the images would be a wrong number
    if not (
        isinstance(images, torch.Tensor)
        and images.dtype == torch.uint8
        and images.shape[0] == batch
        and images.ndim == 4
        and images.shape[-1] == 3
    ):
        raise RuntimeError(
            f"{gen.name}: expected uint8 [{batch},H,W,3] images, got "
            f"{getattr(images, 'dtype', type(images))} {tuple(getattr(images, 'shape', ()))}"
        )


def bench_interleaved(
    generators: list[Generator | Callable[[], Generator]],
    settings: BenchSettings,
    device: torch.device | str,
    progress: Callable[[str], None] | None = None,
    names: list[str] | None = None,
) -> list[ModelTimings]:
    """Warm every model up, then time repeat r of every model before repeat r+1 of any (A B A B ...).

    ``generators``: instances, held for the whole run, or factories, called before each run (untimed)
    and freed after it, so models that do not fit in memory together still interleave (--low-memory).
    ``names``: the registry names they were made from (for ``model_steps_limits``; needed with
    factories; default each generator's own name)."""
    device = torch.device(device)
    if settings.calibrate and device.type != "cpu":
        raise UserError("--calibrate: the calibration is a CPU workload; it measures CPU machine drift only")
    calibration = Calibration() if settings.calibrate else None
    if names is None:
        if not all(isinstance(g, Generator) for g in generators):
            raise ValueError("bench_interleaved: name the generators given as factories")
        names = [g.name for g in generators]
    if len(names) != len(generators):
        raise ValueError(f"{len(names)} names for {len(generators)} generators")
    unknown = sorted({n for n, _ in settings.model_steps_limits} - set(names))
    if unknown:
        raise UserError(f"--steps-limit {unknown[0]}=...: not among the models measured ({', '.join(names)})")
    runners = [_Runner(g, settings, device, calibration, n) for g, n in zip(generators, names)]
    for r in runners:
        r.warm()
    for i in range(settings.repeats):
        for r in runners:
            r.repeat()
            if progress:
                progress(
                    f"repeat {i + 1}/{settings.repeats} {r.timings.name} batch {settings.batch_size}: "
                    f"{r.timings.total[-1]:.3f} s{' (generation extrapolated)' if r.extrapolate else ''}"
                )
    return [r.timings for r in runners]


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-image speed ratios of every pair measured side by side (same batch size and dtype), each
    labelled with the implementations it compares (``upstream:upstream``, ``project:project``, mixed)."""
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if (a["batch_size"], a["dtype"]) != (b["batch_size"], b["dtype"]):
                continue
            impl = (a.get("implementation", "project"), b.get("implementation", "project"))
            out.append(
                {
                    "a": a["model"],
                    "b": b["model"],
                    "batch_size": a["batch_size"],
                    "dtype": a["dtype"],
                    # upstream:upstream and project:project are the fair AR : diffusion ratios;
                    # upstream:project (or the reverse) is a speed-up of one implementation over the other
                    "implementations": f"{impl[0]}:{impl[1]}",
                    "images_per_s_ratio": a["images_per_s"] / b["images_per_s"],
                    "extrapolated": bool(a["extrapolated"] or b["extrapolated"]),
                    "extrapolated_models": [r["model"] for r in (a, b) if r["extrapolated"]],
                }
            )
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | batch | dtype | images/s | s/image | total median s (IQR) | generation s | decode s "
        "| per-step s | peak MiB | extrapolated |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]

    def s(d: dict | None, key: str = "median") -> str:
        return f"{d[key]:.4g}" if d else "n/a"

    for r in rows:
        mem = f"{r['peak_memory_mib']:.0f}" if r.get("peak_memory_mib") is not None else "n/a"
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['dtype']} | {r['images_per_s']:.4g} | "
            f"{r['s_per_image']:.4g} | {r['total_s']['median']:.4g} ({r['total_s']['iqr']:.2g}) | "
            f"{s(r.get('generation_s'))} | {s(r.get('decode_s'))} | {s(r.get('per_step_s'))} | {mem} | "
            f"{'yes' if r['extrapolated'] else 'no'} |"
        )
    return "\n".join(lines)


def runs_agree(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two bench summaries of the same settings, row by row (model, batch, dtype): do their total-time
    medians agree within their own spread (``harness.speed.timing.agree``)? Where both runs timed the
    machine calibration (``--calibrate``), in its units, so drift of the machine as a whole between
    the runs is not read as a difference; otherwise in seconds. ``unit`` says which."""
    from harness.speed.timing import Spread, agree

    def key(r):
        return r["model"], r["batch_size"], r["dtype"]

    def as_spread(d):
        return Spread(d["n"], d["median"], d["q1"], d["q3"], d["min"], d["max"], d["mean"])

    b_rows = {key(r): r for r in rows_b}
    out = []
    for a in rows_a:
        b = b_rows.get(key(a))
        if b is None:
            continue
        sa, sb = as_spread(a["total_s"]), as_spread(b["total_s"])
        row = {
            "model": a["model"],
            "batch_size": a["batch_size"],
            "dtype": a["dtype"],
            "median_s": [sa.median, sb.median],
            "range_s": [sa.range, sb.range],
            "difference_s": abs(sa.median - sb.median),
            "unit": "s",
            "agree": agree(sa, sb),
        }
        if "total_calibrations" in a and "total_calibrations" in b:
            ca, cb = as_spread(a["total_calibrations"]), as_spread(b["total_calibrations"])
            row.update(
                {
                    "unit": "calibrations",
                    "median_calibrations": [ca.median, cb.median],
                    "range_calibrations": [ca.range, cb.range],
                    "agree": agree(ca, cb),
                }
            )
        out.append(row)
    return out
