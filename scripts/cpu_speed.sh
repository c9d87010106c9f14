#!/usr/bin/env bash
# `make cpu-speed`: every committed CPU speed result, regenerated on a quiet machine (about 80 minutes
# on 2 cores). Nothing else may run meanwhile: the figures are only as good as the machine is quiet
# (each record holds the load average before and after).
#   0. results/speed/upstream_vs_project.{md,json}: upstream's own ARModel.generate against the project's
#      sampler on the same weights (scripts/upstream_speed.sh; needs the official checkouts in $UPSTREAM,
#      default /work/upstream; about 10 minutes).
#   1. results/speed/ar_floor_report.{md,json}: AliTok-B with CFG, the replica loop (a model of upstream's
#      structure, not its code), upstream's own generate where $UPSTREAM holds it, and our sampler
#      (aten Linear + SDPA = before; oneDNN packed, then + the C decode-attention kernel = after; the
#      kernels chosen for this machine; fp32 and bf16) against the floors, 273 steps.
#   2. results/bench/cpu/side-by-side-batch2: AliTok-L/XL, RAR-XXL, LightningDiT-XL/1 interleaved
#      (random weights; the AR models timed in full, LightningDiT on 4 of its 250 network calls and
#      scaled, which is exact for a sampler whose every call has the same shapes), for the AR : diffusion
#      ratios.
#   3. results/bench/cpu/all-models-batch2: all nine full-size models of the issue (AliTok-B/L/XL, LlamaGen
#      GPT-B/L and GPT-XL-384, RAR-XXL, DiT-XL/2, LightningDiT-XL/1) interleaved in one run, built per run
#      (--low-memory: they do not fit in 24 GB together), AR in full, the diffusion models on 4 calls.
#   4. results/bench/cpu/alitok-tiny-run{1,2} + agreement.json: two identical runs, checked against
#      their own spread, in units of the machine calibration timed before each repeat (--calibrate).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
THREADS=${CPU_SPEED_THREADS:-2}
export OMP_NUM_THREADS=$THREADS
echo "cpu-speed: load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $THREADS threads"
UPSTREAM=${UPSTREAM:-/work/upstream}
PYTHON=$PY bash scripts/upstream_speed.sh
$PY -m harness.speed.ar_floor_report --out results/speed --threads "$THREADS" --steps 273 --repeats 5 --no-compile \
  $([ -f "$UPSTREAM/alitok/modeling/ar.py" ] && echo --upstream "$UPSTREAM")
$PY -m harness bench --model alitok-l --model alitok-xl --model lightningdit-xl-1 --model rar-xxl --random-weights \
  --batch-size 2 --steps-limit lightningdit-xl-1=4 --repeats 3 --threads "$THREADS" --device cpu --out results/bench/cpu/side-by-side-batch2
$PY -m harness bench --model alitok-b --model alitok-l --model alitok-xl --model llamagen-gpt-b --model llamagen-gpt-l \
  --model llamagen-gpt-xl-384 --model rar-xxl --model dit-xl-2 --model lightningdit-xl-1 --random-weights --low-memory \
  --batch-size 2 --steps-limit dit-xl-2=4 --steps-limit lightningdit-xl-1=4 --repeats 3 --threads "$THREADS" --device cpu \
  --out results/bench/cpu/all-models-batch2
for run in 1 2; do
  $PY -m harness bench --preset cpu-smoke --repeats 5 --calibrate --threads "$THREADS" --device cpu \
    --out results/bench/cpu/alitok-tiny-run$run
done
$PY -m harness bench --agree results/bench/cpu/alitok-tiny-run1 results/bench/cpu/alitok-tiny-run2 --out results/bench/cpu
echo "cpu-speed: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
