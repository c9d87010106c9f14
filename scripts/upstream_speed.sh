#!/usr/bin/env bash
# results/speed/upstream_vs_project.{md,json}: AliTok-B (random weights, fp32, CFG 16, 273 steps) sampled by
# upstream's own ARModel.generate (imported from $UPSTREAM/alitok, loaded with the project model's weights;
# harness/speed/upstream.py) and by the project's sampler, interleaved repeat by repeat in one process, at
# batch 2 and 16, with the hardware floors measured before every run. Variants: official-generate (upstream),
# ours-packed-c (oneDNN packed Linear + C decode attention, forced on: the old default), ours-auto (what the
# generator runs: the kernels measured fastest on this machine, harness/nn/kernels/kernel_choice.py). The record
# names the CPU, threads, commit (dirty flag), load average and this command.
# About 10 minutes on the 2-core Intel Xeon here when the machine is quiet (3 repeats; warm-up 8 steps);
# a loaded machine stretches it many times over: run it with nothing else running.
#   UPSTREAM=/path/to/checkouts bash scripts/upstream_speed.sh      (default /work/upstream)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
THREADS=${CPU_SPEED_THREADS:-2}
export OMP_NUM_THREADS=$THREADS
UPSTREAM=${UPSTREAM:-/work/upstream}
$PY -m harness.speed.ar_floor_report --upstream "$UPSTREAM" --variants official-generate ours-packed-c ours-auto \
  --batches 2 16 --steps 273 --repeats "${UPSTREAM_SPEED_REPEATS:-3}" --threads "$THREADS" \
  --stem upstream_vs_project --out "${UPSTREAM_SPEED_OUT:-results/speed}" ${UPSTREAM_SPEED_ARGS:-}
