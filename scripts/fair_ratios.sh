#!/usr/bin/env bash
# The paper's AR : diffusion speed ratios, each twice from ONE interleaved bench run on this machine: upstream's
# own samplers against each other (official:official) and the harness's (harness:harness), with the paper's value
# beside them (harness/report/fair_ratios.py reads the ratio claims of results/claims/alitok.yaml).
# Random weights (speed only), fp32, CFG on, decode included; each official sampler runs on the project model's
# weights from $UPSTREAM/<checkout> (harness/speed/upstream.py). Writes $OUT/bench (records) and
# $OUT/fair_ratios.{md,json}.
#   Full size, as the paper measures (batch 64; a GPU, or hours on a CPU):
#     UPSTREAM=/path/to/checkouts bash scripts/fair_ratios.sh
#   Scaled for a small CPU (what results/speed/fair_ratios.md was made with): FAIR_RATIOS_SCALED=1: batch 1,
#   AliTok-XL against LightningDiT-XL only (RAR-XXL's 1.4 B fp32 weights and their build do not fit beside the
#   rest in a shared machine's memory), AliTok timed on its first 32 of 273 steps and LightningDiT on 2 of its 249
#   Euler calls, each scaled to the full count (labelled extrapolated in the output).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export HF_HUB_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
UPSTREAM=${UPSTREAM:-/work/upstream}
OUT=${OUT:-results/speed/fair_ratios}
THREADS=${FAIR_RATIOS_THREADS:-2}
export OMP_NUM_THREADS=$THREADS
if [ "${FAIR_RATIOS_SCALED:-0}" = 1 ]; then
  run=(--model alitok-xl --model lightningdit-xl-1 --batch-size 1 --steps-limit alitok-xl=32
       --steps-limit lightningdit-xl-1=2 --device cpu)
else
  run=(--model alitok-xl --model lightningdit-xl-1 --model alitok-l --model rar-xxl --batch-size 64
       --steps-limit lightningdit-xl-1=25)
fi
read -ra extra <<< "${FAIR_RATIOS_ARGS:-}"
$PY -m harness bench "${run[@]}" --random-weights --upstream "$UPSTREAM" --repeats "${FAIR_RATIOS_REPEATS:-3}" \
  --warmup 1 --threads "$THREADS" "${extra[@]}" --out "$OUT/bench"
$PY -m harness.report.fair_ratios "$OUT/bench" --out "$OUT"
