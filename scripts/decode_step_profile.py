"""Where an AliTok-B decode step spends its time: torch.profiler over 10 decode steps at the mean cache length
(positions 130-139 of 274), random weights, fp32, CFG rows of batch 2 and 16, packed oneDNN Linear and the C
decode-attention operator (what ``ARGenerator`` runs where both win), printed as markdown tables.

    PYTHONPATH=. python scripts/decode_step_profile.py --threads 2 [--threads 1] > results/speed/decode_profile_tables.md

Proportions only on a loaded machine (every OpenMP-parallel op then waits for a descheduled thread).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

import torch
from torch.profiler import ProfilerActivity, profile

from alitok.generator import PRESETS, build
from harness.core.devices import cpu_model
from harness.nn.kernels.packed_linear import PackedLinears
from harness.nn.layers.attention import set_decode_kernel


def tables(threads: int, steps: int = 10, first: int = 130) -> str:
    torch.set_num_threads(threads)
    model = build(PRESETS["alitok-b"].config, generator=torch.Generator().manual_seed(0)).eval()
    set_decode_kernel(model, "c")
    packed = PackedLinears(model)
    packed.pack()
    out = []
    for rows in (4, 32):
        with torch.inference_mode(), packed.active():
            model.reset_cache(rows)
            model.prefill(torch.full((rows, 1), model.cfg.null_class_id))
            token = torch.zeros(rows, dtype=torch.long)
            for p in (1, 2):  # first-call allocations
                model.decode_step(token, torch.tensor([p]), 16)
            t = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for p in range(first, first + steps):
                    model.decode_step(token, torch.tensor([p]), -(-(first + steps) // 16) * 16)
            wall = (time.perf_counter() - t) / steps
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        out.append(
            f"### {rows} rows (batch {rows // 2} with CFG), {threads} thread(s), load average "
            f"{os.getloadavg()[0]:.1f}\n\nwall {wall * 1e3:.1f} ms a step with the profiler on; op self time "
            f"{total / 1e3 / steps:.1f} ms a step ({100 * total / 1e6 / steps / wall:.0f} % of wall); "
            f"{sum(e.count for e in events) / steps:g} operator calls a step.\n\n| op | % of op time | calls a step |\n"
            "|---|---|---|\n"
            + "".join(
                f"| `{e.key}` | {100 * e.self_cpu_time_total / total:.1f} | {e.count / steps:g} |\n" for e in events[:8]
            )
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, action="append", default=None)
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"CPU {cpu_model()}; torch {torch.__version__}; commit {commit}\n")
    for threads in args.threads or [2]:
        print(tables(threads))


if __name__ == "__main__":
    main()
