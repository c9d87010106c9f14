"""AR sampler speed against this machine's floors: AliTok-B with CFG, random weights, fp32 and bf16.

    python -m harness.speed.ar_floor_report --out results/speed --threads 2 --steps 273 --repeats 5 \
        [--upstream DIR] [--variants official-generate ours-packed-c ...]

Variants, timed in interleaved repeats (every repeat runs every variant and batch once, so load
changes hit all of them alike):

- ``official-generate`` (only with ``--upstream DIR``): upstream's own ``ARModel.generate``, imported
  from ``DIR/alitok`` and loaded with this model's weights (``harness.speed.upstream``). Speed-ups are
  taken against it when it ran; otherwise against the replica, and labelled so;
- ``replica-loop``: a model of upstream's structure over the project's modules, not upstream's code:
  concatenating KV cache (``torch.cat`` per layer and step), the whole ``[cond | ids]`` sequence
  embedded every step, attention over every cached position, head on the last position;
- ``ours-aten``: the shared sampler (``harness.nn.samplers.ar_sampling.ar_sample``) with PyTorch's own Linear
  (MKL sgemm on CPU) and SDPA: the sampler before the CPU kernel changes;
- ``ours-packed``: the same with every Linear through oneDNN on weights packed once
  (``harness.nn.kernels.packed_linear``), attention still SDPA;
- ``ours-packed-c``: packed Linear layers and the C decode-attention kernel (QK-norm, RoPE, cache
  write and attention in one call, ``harness.nn.kernels.decode_attention``), both forced on;
- ``ours-auto``: what ``ARGenerator`` does by default: the Linear and attention paths chosen for this
  machine by a short measurement at first use (``harness.nn.kernels.kernel_choice``; recorded);
- ``ours-compiled``: ``torch.compile`` of the decode step (compile time excluded and recorded; aten
  Linear and SDPA inside the graph);
- ``ours-bf16-packed`` / ``ours-bf16-packed-c``: the model cast to bf16 once, packed Linear layers,
  SDPA or the C kernel.
  (Earlier variants, attention over every cache slot, bf16 by autocast and bf16 with aten Linear
  layers, were measured and dropped: results/speed/ar_optimisation.md.)

Floors (``harness.speed.floors``, measured in this process at the same thread count, once at the
start and again just before every timed run), summed over the timed steps of the doubled CFG batch.
Each run is divided by the floor measured before it and ``x floor`` is the median of those ratios,
so a shared machine's drift (its read bandwidth moved ~1.5x within one report) hits both alike:

- weight-read: every non-embedding weight read once per step at the measured read GB/s (the issue's
  batch-2 floor);
- matmul: the step's Linear and attention FLOPs at the measured fp32 matmul peak (best kernel; the
  issue's batch-16 floor);
- roofline: per step the larger of (weights + the KV cache the step attends over) / read GB/s and
  FLOPs / peak. At batch 16 with CFG the fp32 KV cache of AliTok-B reaches 1.3 GB at the last step,
  more than the weights (0.7 GB), so the matmul floor alone understates what a step must cost.

``--steps N`` below 273 times the first N steps and scales to 273 (labelled ``extrapolated``); the
floors are computed for the same steps and scaled alike.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.core.errors import UserError
from harness.core.interfaces import ARSampling
from harness.core.io import write_json_atomic, write_text_atomic
from harness.nn.kernels import decode_attention, kernel_choice
from harness.nn.kernels.packed_linear import PackedLinears
from harness.nn.layers.attention import set_decode_kernel
from harness.nn.layers.rope import apply_rope
from harness.nn.samplers.ar_sampling import ar_sample
from harness.speed import floors
from harness.speed.timing import cpu_name, load_average

OFFICIAL_STEPS = 273
WARMUP_STEPS = 8


@torch.no_grad()
def replica_loop(
    model, labels: torch.Tensor, params: ARSampling, steps: int, generator: torch.Generator
) -> torch.Tensor:
    """A model of upstream's ``generate`` loop (ali-vilab/alitok ``modeling/ar.py``), op for op in
    structure, over the project's modules: not upstream's code (``--upstream`` times that)."""
    cfg = model.cfg
    torch.rand(labels.shape, generator=generator)  # preprocess_condition's rand_like
    condition = labels + cfg.codebook_size + 1
    b = labels.shape[0]
    null = torch.full_like(condition, cfg.null_class_id)
    ids = torch.full((b, 0), -1, dtype=torch.long)
    caches: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(model.blocks)
    rope = model.rope_table()
    power = torch.ones(1) * params.cfg_power
    for step in range(steps):
        scale_step = (1 - torch.cos(((step / steps) ** power) * torch.pi)) * 1 / 2  # upstream: steps = 273
        cfg_scale = (params.cfg_scale - 1) * scale_step + 1
        seq = torch.cat([torch.cat([condition, null]).view(2 * b, -1), torch.cat([ids, ids])], dim=1)
        h = model.embeddings(seq)
        rows = rope[: seq.shape[1]]
        if step > 0:  # upstream: with a filled cache only the last token goes through the blocks
            h, rows = h[:, -1:], rows[-1:]
        for i, blk in enumerate(model.blocks):
            a = blk.attn
            n = h.shape[1]
            q, k, v = a.qkv(blk.norm1(h)).reshape(2 * b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            q, k = apply_rope(a.q_norm(q), rows), apply_rope(a.k_norm(k), rows)
            if caches[i] is not None:
                k, v = torch.cat([caches[i][0], k], dim=-2), torch.cat([caches[i][1], v], dim=-2)
            caches[i] = (k, v)
            out = F.scaled_dot_product_attention(q, k, v)
            h = h + a.proj(out.transpose(1, 2).reshape(2 * b, n, a.dim))
            h = h + blk.mlp(blk.norm2(h))
        logits = model.output(model.norm(h))
        cond_logits, uncond_logits = logits[:b], logits[b:]
        logits = (uncond_logits + (cond_logits - uncond_logits) * cfg_scale)[:, -1] / params.temperature
        sampled = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator)
        ids = torch.cat((ids, sampled), dim=-1)
    return ids


def _ours(model, labels, params, steps, generator, **kw):
    torch.rand(labels.shape, generator=generator)  # the model's declared pre-sampling draw
    cond = model.condition_tokens(labels)
    return ar_sample(model, cond, steps, params, generator, uncond=model.null_condition_tokens(cond), **kw)


def step_flops(model, rows: int, kv: int) -> int:
    """Matmul FLOPs of one decode step: Linear layers (head included) plus QK^T and PV at ``kv`` keys."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.cfg
    attention = 2 * 2 * cfg.depth * cfg.width * kv
    return 2 * rows * linear + rows * attention


def kv_bytes(model, rows: int, kv: int, dtype_bytes: int = 4) -> int:
    """Bytes of K and V one decode step reads: every layer, every row, ``kv`` cached positions."""
    cfg = model.cfg
    return 2 * cfg.depth * rows * kv * cfg.width * dtype_bytes


def weight_bytes(model, dtype_bytes: int = 4) -> int:
    """Bytes of the weights one step must read (all but the embedding table, of which it reads rows)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embeddings")) * dtype_bytes


def step_costs(model, batch: int, steps: int) -> tuple[int, list[int], list[int]]:
    """``(weight bytes, FLOPs per step, KV-cache bytes per step)`` of ``steps`` decode steps of a CFG
    ``batch``: what the floors divide, independent of the machine (computed once per batch)."""
    rows, n_cond = 2 * batch, 1
    return (
        weight_bytes(model),
        [step_flops(model, rows, n_cond + t) for t in range(steps)],
        [kv_bytes(model, rows, n_cond + t) for t in range(steps)],
    )


def floor_seconds(
    model, batch: int, steps: int, fl: dict, scale: float = 1.0, costs: tuple[int, list[int], list[int]] | None = None
) -> dict[str, float]:
    """Weight-read, matmul and roofline floors of ``steps`` decode steps of a CFG ``batch`` at the read
    bandwidth and fp32 matmul peak in ``fl``, times ``scale`` (273 / steps when extrapolating).
    ``costs``: ``step_costs(model, batch, steps)`` when the caller has it already."""
    weights, flops, kv = costs or step_costs(model, batch, steps)
    bw, peak = fl["read_gbps"] * 1e9, fl["matmul_fp32_gflops"] * 1e9
    roofline = sum(max((weights + k) / bw, f / peak) for f, k in zip(flops, kv))
    return {
        "weight_read_s": steps * weights / bw * scale,
        "matmul_s": sum(flops) / peak * scale,
        "roofline_s": roofline * scale,
    }


def summarise(ts: list[float], per_run: list[dict], batch: int, scale: float) -> dict:
    """One variant and batch: times ``ts`` (s, ``steps`` steps) and the floors measured just before each
    run. The multiples of the floor are taken run by run and then their median: a shared VM's read
    bandwidth moved 50 -> 72 GB/s between two reports and by ~1.5x within one, so a floor measured once
    at the start would judge late runs against another machine."""
    floor_kind = "weight_read_s" if batch <= 2 else "matmul_s"  # the floor for this batch
    x = [t * scale / f[floor_kind] for t, f in zip(ts, per_run)]
    x_roof = [t * scale / f["roofline_s"] for t, f in zip(ts, per_run)]
    med = statistics.median(ts) * scale
    return {
        "median_s": med,
        "min_s": min(ts) * scale,
        "max_s": max(ts) * scale,
        "spread": (max(ts) - min(ts)) / statistics.median(ts),
        "floor": floor_kind,
        "floor_s": statistics.median(f[floor_kind] for f in per_run),
        "x_floor": statistics.median(x),
        "x_floor_min": min(x),
        "x_floor_max": max(x),
        "x_roofline": statistics.median(x_roof),
        "images_per_s": batch / med,
        "runs_s": ts,
    }


def floor_range(paired: dict) -> dict[str, list[float]]:
    """The lowest and highest read GB/s and matmul GFLOP/s measured before the runs: the drift."""
    every = [f for per_batch in paired.values() for fs in per_batch.values() for f in fs]
    return (
        {k: [min(f[k] for f in every), max(f[k] for f in every)] for k in ("read_gbps", "matmul_fp32_gflops")}
        if every
        else {}
    )


VARIANTS = (
    "official-generate",
    "replica-loop",
    "ours-aten",
    "ours-packed",
    "ours-packed-c",
    "ours-auto",
    "ours-bf16-packed",
    "ours-bf16-packed-c",
    "ours-compiled",
)


def run(
    out: Path,
    *,
    threads: int,
    steps: int,
    repeats: int,
    batches: list[int],
    compile: bool,
    upstream: Path | None = None,
    variants: list[str] | None = None,
    stem: str = "ar_floor_report",
    command: str | None = None,
) -> dict:
    """Time the variants (default: all but ``ours-auto``, plus ``official-generate`` with ``upstream``,
    ``ours-compiled`` with ``compile``) and write ``out/<stem>.{json,md}``."""
    torch.set_num_threads(threads)
    if variants is None:
        variants = [v for v in VARIANTS if v not in ("ours-auto", "ours-compiled", "official-generate")]
        variants = (["official-generate"] if upstream else []) + variants + (["ours-compiled"] if compile else [])
    if "official-generate" in variants and upstream is None:
        raise UserError("--variants official-generate needs --upstream DIR (a folder holding the alitok checkout)")
    if any(v.endswith("-c") for v in variants) and decode_attention.build_error():
        raise UserError(f"the C decode-attention kernel does not build here: {decode_attention.build_error()}")
    from harness.core.registry import generators, load_plugins
    from harness.runs.records import code_info
    from harness.speed import upstream as up

    load_plugins()
    load_start = load_average()
    code = code_info()  # the code that runs: read now, so later edits to the tree cannot relabel it
    gen = generators.get("alitok-b")(device=torch.device("cpu"), random_weights=True)
    model, params = gen.model, gen.default_sampling  # the official AliTok-B preset: cfg 16, pow 1.8
    official = up.official_generator(gen, upstream, "alitok-b") if "official-generate" in variants else None
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16) if any("bf16" in v for v in variants) else None
    fl = floors.measure(threads)

    # the replica, upstream's generate and our sampler draw the same tokens (same random calls, same weights)
    probe = torch.tensor([207, 1])
    with torch.inference_mode():
        replica = replica_loop(model, probe, params, 8, torch.Generator().manual_seed(0))
        replica_ok, official_ok = {}, None
        for attention in ("c", "sdpa"):
            set_decode_kernel(model, attention)
            ours_tokens = _ours(model, probe, params, 8, torch.Generator().manual_seed(0))
            replica_ok[attention] = torch.equal(replica, ours_tokens)
        if official is not None:
            official_ok = torch.equal(
                official.run_steps(probe, torch.Generator().manual_seed(0), params, 8)[:, :8], ours_tokens
            )

    packed = PackedLinears(model)
    packed_bf16 = PackedLinears(model_bf16) if model_bf16 is not None else None

    # every variant: fn(labels, n) samples n tokens
    def ours(m, pk=None, attention="sdpa"):
        def fn(y, n):
            set_decode_kernel(m, attention)  # the variants share one model: each sets its kernel
            with pk.active() if pk else contextlib.nullcontext():
                return _ours(m, y, params, n, torch.Generator().manual_seed(0))

        return fn

    def ours_auto(y, n):  # what ARGenerator runs by default: the kernels chosen for this machine
        gen.attention = "auto"  # its model is the one the other variants set
        return gen.run_steps(y, torch.Generator().manual_seed(0), params, n)

    def official_generate(y, n):
        return official.run_steps(y, torch.Generator().manual_seed(0), params, n)

    def run_compiled(y, n):
        set_decode_kernel(model, "sdpa")
        return _ours(model, y, params, n, torch.Generator().manual_seed(0), decode_step=compiled)

    available = {
        "official-generate": official_generate,
        "replica-loop": lambda y, n: replica_loop(model, y, params, n, torch.Generator().manual_seed(0)),
        "ours-aten": ours(model),
        "ours-packed": ours(model, packed),
        "ours-packed-c": ours(model, packed, "c"),
        "ours-auto": ours_auto,
        "ours-bf16-packed": ours(model_bf16, packed_bf16),
        "ours-bf16-packed-c": ours(model_bf16, packed_bf16, "c"),
        "ours-compiled": run_compiled,
    }
    unknown = [v for v in variants if v not in available]
    if unknown:
        raise UserError(f"--variants {unknown[0]}: unknown (choose from {', '.join(VARIANTS)})")
    fns = {v: available[v] for v in variants}
    if "ours-compiled" in fns:
        compiled = torch.compile(model.decode_step, mode="reduce-overhead", fullgraph=True)
    if "ours-auto" in fns:
        gen.prepare()  # packing and the kernel choice (a measurement at first use) stay out of the clock
    compile_s = None
    times: dict[str, dict[int, list[float]]] = {v: {b: [] for b in batches} for v in fns}
    paired: dict[str, dict[int, list[dict]]] = {v: {b: [] for b in batches} for v in fns}
    with torch.inference_mode():
        for b in batches:  # warm-up outside the timed repeats: first-call allocations on a few steps;
            for name, fn in fns.items():  # the compiled step in full (it compiles per cache-length bucket)
                t = time.perf_counter()
                fn(torch.arange(b) % 1000, steps if name == "ours-compiled" else min(steps, WARMUP_STEPS))
                if name == "ours-compiled":
                    compile_s = (compile_s or 0.0) + time.perf_counter() - t
        for _ in range(repeats):
            for b in batches:
                for name, fn in fns.items():
                    paired[name][b].append(floors.measure_quick())  # the floor of this run, just before it
                    t = time.perf_counter()
                    fn(torch.arange(b) % 1000, steps)
                    times[name][b].append(time.perf_counter() - t)

    scale = OFFICIAL_STEPS / steps
    costs = {b: step_costs(model, b, steps) for b in batches}
    floor_s = {b: floor_seconds(model, b, steps, fl, scale, costs[b]) for b in batches}
    baseline = "official-generate" if "official-generate" in fns else "replica-loop" if "replica-loop" in fns else None
    rows = []
    for name, per_batch in times.items():
        for b, ts in per_batch.items():
            per_run = [floor_seconds(model, b, steps, f, scale, costs[b]) for f in paired[name][b]]
            row = {"variant": name, "batch": b, **summarise(ts, per_run, b, scale)}
            if baseline:
                base = times[baseline][b]
                # per repeat: the runs of one repeat were interleaved, so their ratio shares the machine's load
                per_repeat = [o / t for o, t in zip(base, ts)]
                row.update(speedup=statistics.median(base) / statistics.median(ts), speedup_per_repeat=per_repeat)
            rows.append(row)
    record = {
        "kind": "ar-floor-report",
        "model": "alitok-b (random weights)",
        "sampling": params.to_dict(),
        "steps_measured": steps,
        "steps_reported": OFFICIAL_STEPS,
        "extrapolated": steps != OFFICIAL_STEPS,
        "repeats": repeats,
        "interleaved": True,
        "batches": batches,
        "speedup_against": baseline,
        "upstream": official.provenance if official is not None else None,
        "threads": {"torch": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "floors": fl,
        "floor_seconds": floor_s,
        "floors_paired": {name: {b: fs for b, fs in per_batch.items()} for name, per_batch in paired.items()},
        "floor_range": floor_range(paired),
        "compile_s": compile_s,
        "replica_matches_ours": replica_ok,
        "official_matches_ours": official_ok,
        "kernels": {
            "linear": gen.linear_kernel(),
            "attention": gen.attention_kernel(),
            "choices": kernel_choice.recorded(),
        },  # after gen's kernel queries: their choices included
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "code": code,
        "command": command,
        "rows": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{stem}.json", record)
    write_text_atomic(out / f"{stem}.md", markdown(record))
    return record


def _drift(rng: dict | None) -> str:
    if not rng:
        return ""
    (r0, r1), (m0, m1) = rng["read_gbps"], rng["matmul_fp32_gflops"]
    return (
        f"; measured again before every run: read {r0:.1f}-{r1:.1f} GB/s, fp32 matmul {m0:.0f}-{m1:.0f} "
        f"GFLOP/s. Each run is divided by its own floor; x floor is the median of those ratios"
    )


def _baseline_label(record: dict) -> str:
    return {"official-generate": "upstream's generate", "replica-loop": "the replica loop (not upstream's code)"}.get(
        record.get("speedup_against"), "n/a"
    )


def markdown(record: dict) -> str:
    fl = record["floors"]
    code = record.get("code") or {}
    up = record.get("upstream")
    upstream_line = (
        f"Upstream: `{up['function']}` from {up['checkout']} (commit {up['commit']}"
        f"{', dirty' if up.get('dirty') else ''}), loaded with the same weights; its first 8 tokens "
        f"equal ours: {record.get('official_matches_ours')}.\n"
        if up
        else "Upstream's code did not run (no --upstream): nothing below is an official figure.\n"
    )
    kernels = record.get("kernels") or {}
    load, threads = record.get("load_average_start") or [0.0], record["threads"].get("torch") or 1
    warn = (
        f"**The machine was loaded (load average {load[0]} at the start on {threads} timed threads; other "
        "processes share the cores): the timings below are not representative of this code on this CPU; "
        "rerun on a quiet machine.**\n\n"
        if load and load[0] > threads
        else ""
    )
    if record["extrapolated"]:
        warn += (
            "**Extrapolated from the first steps: a KV-cached AR step grows with its cache, so the 273-step "
            "figures are indicative only.**\n\n"
        )
    head = (
        f"# AR sampler vs hardware floors: AliTok-B, CFG, random weights\n\n"
        f"CPU {record.get('cpu', 'n/a')}; threads {record['threads']}; load average "
        f"{record['load_average_start']} -> {record['load_average_end']}; torch {record['torch']}; commit "
        f"{code.get('git_sha', 'n/a')}{' (dirty)' if code.get('dirty') else ''}"
        f"; {record['repeats']} interleaved repeats; {record['steps_measured']} of 273 steps measured"
        f"{' (times scaled to 273 steps: extrapolated)' if record['extrapolated'] else ''}.\n\n{warn}"
        f"{'Command: `' + record['command'] + '`.' + chr(10) if record.get('command') else ''}"
        f"{upstream_line}"
        f"Kernels chosen for this machine (ours-auto): Linear {kernels.get('linear', 'n/a')}, decode attention "
        f"{kernels.get('attention', 'n/a')}.\n"
        f"Floors measured in-process: fp32 matmul {fl['matmul_fp32_gflops']:.1f} GFLOP/s (best kernel; "
        f"torch.mm alone {fl.get('matmul_fp32_gflops_aten', float('nan')):.1f}), bf16 matmul "
        f"{fl['matmul_bf16_gflops']:.1f} GFLOP/s, read {fl['read_gbps']:.1f} GB/s at the start"
        f"{_drift(record.get('floor_range'))}. Compile time "
        f"{record['compile_s'] and round(record['compile_s'], 1)} s (excluded). Replica draws our tokens: "
        f"{record['replica_matches_ours']}.\n\n"
        "| variant | batch | median s (273 steps) | min-max s | spread | floor | floor s | x floor | "
        f"x floor min-max | x roofline | speed-up vs {_baseline_label(record)} (per repeat) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )

    def speedup(r):
        if "speedup" not in r:
            return "n/a"
        return f"{r['speedup']:.2f} ({', '.join(f'{x:.2f}' for x in r['speedup_per_repeat'])})"

    lines = [
        f"| {r['variant']} | {r['batch']} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} | "
        f"{r['spread']:.0%} | {r['floor'].replace('_s', '')} | {r['floor_s']:.2f} | {r['x_floor']:.2f} | "
        f"{r['x_floor_min']:.2f}-{r['x_floor_max']:.2f} | {r['x_roofline']:.2f} | {speedup(r)} |"
        for r in record["rows"]
    ]
    floors_line = "; ".join(
        f"batch {b}: " + ", ".join(f"{k.replace('_s', '')} {v:.2f} s" for k, v in f.items())
        for b, f in record.get("floor_seconds", {}).items()
    )
    return (
        head + "\n".join(lines) + "\n" + (f"\nFloors at the start (273 steps): {floors_line}.\n" if floors_line else "")
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=Path("results/speed"), help="folder for the JSON and Markdown")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (set and recorded)")
    ap.add_argument("--steps", type=int, default=OFFICIAL_STEPS, help="steps timed (scaled to 273 if fewer)")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repeats per variant and batch")
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument(
        "--upstream",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of official checkouts: time upstream's own generate (DIR/alitok) beside ours",
    )
    ap.add_argument("--variants", nargs="+", default=None, choices=VARIANTS, help="default: every variant")
    ap.add_argument("--stem", default="ar_floor_report", help="output file names: <out>/<stem>.{json,md}")
    return ap


def main(argv: list[str] | None = None) -> None:
    import shlex
    import sys

    ap = build_parser()
    a = ap.parse_args(argv)
    if not 1 <= a.steps <= OFFICIAL_STEPS:
        ap.error(f"--steps: must lie in 1..{OFFICIAL_STEPS}, got {a.steps}")  # one line, exit 2
    command = "python -m harness.speed.ar_floor_report " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        record = run(
            a.out,
            threads=a.threads,
            steps=a.steps,
            repeats=a.repeats,
            batches=a.batches,
            compile=not a.no_compile,
            upstream=a.upstream,
            variants=a.variants,
            stem=a.stem,
            command=command,
        )
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
    print(markdown(record))


if __name__ == "__main__":
    main()
