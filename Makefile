# Hare & Tortoise agent suite. Every target installs what it needs into .venv first.
# The VARS set flags of each target's python -m command (its --help lists them all):
#   make atari GAME=Pong AGENT=drq_ht [SEED=0] [STEPS=100000] [GIN='A.b=1;C.d=2'] [RUNS=runs] [FORCE=1] [RESTART=1] [VERBOSE=1]
#   make analyze RUNS=runs [BASELINES='DrQ_eps SPR'] [ARGS='--common-games --reps 10000']
#   make sweep AGENTS="drq drq_ht" GAMES=all SEEDS=5 [RUNS=runs] [STEPS=2000] [GIN='A.b=1'] [CPUS=N] [ARGS='--cpus-per-run 2']
#   make warmstart [DATASET=fashion_mnist] [MODEL=cnn] [METHOD='warm fresh hare_tortoise'] [SEEDS_WS=3] [WS_ARGS='--epochs 5']
#   make data (Fashion-MNIST for warmstart/) | make test | make bench [BBF_BENCH_ARGS='--widths 1 4 --rounds 3 --calls 5'] | make install [GPU=1]

PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
GPU_STAMP := $(VENV)/.installed-gpu-stamp
GPU ?=
export PYTHONWARNINGS ?= ignore

GAME ?= Pong
AGENT ?= drq
SEED ?= 0
RUNS ?= runs
STEPS ?=
GIN ?=
FORCE ?=
RESTART ?=
VERBOSE ?=
BASELINES ?=
ARGS ?=
AGENTS ?= drq
GAMES ?= all
SEEDS ?= 5
CPUS ?=
DATASET ?= fashion_mnist
MODEL ?=
METHOD ?=
SEEDS_WS ?=
WS_ARGS ?=
BBF_BENCH_ARGS ?= --widths 1 4 --rounds 2 --calls 1

.PHONY: gpu-check install atari analyze sweep test bench data warmstart clean-venv help

help:
	@sed -n '1,7p' Makefile

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip setuptools wheel
	$(PYTHON) -m pip install -q -r requirements.txt
	$(PYTHON) -m pip install -q --no-deps baselines==0.1.5
	touch $(STAMP)

# GPU=1 adds JAX's CUDA 12 plugin and the pinned NVIDIA wheels to the same .venv
# (requirements-gpu.txt); every other target then runs on the GPU unchanged.
$(GPU_STAMP): $(STAMP) requirements-gpu.txt
	$(PYTHON) -m pip install -q -r requirements-gpu.txt
	touch $(GPU_STAMP)

install: $(STAMP) $(if $(GPU),$(GPU_STAMP))

# VERBOSE=1 shows TensorFlow's, XLA's and gym's start-up messages (hidden by common/quiet.py).
atari: $(STAMP)
	$(PYTHON) -m atari100k.run --agent '$(AGENT)' --game '$(GAME)' --seed '$(SEED)' \
	  --runs '$(RUNS)' $(if $(STEPS),--steps '$(STEPS)') $(if $(GIN),--gin '$(GIN)') \
	  $(if $(FORCE),--force) $(if $(RESTART),--restart) $(if $(VERBOSE),--verbose)

analyze: $(STAMP)
	$(PYTHON) -m analysis.aggregate '$(RUNS)' $(if $(strip $(BASELINES)),--baselines $(BASELINES)) $(ARGS)

sweep: $(STAMP)
	$(PYTHON) -m atari100k.sweep --agents $(AGENTS) --games $(GAMES) --seeds '$(SEEDS)' \
	  --runs '$(RUNS)' $(if $(STEPS),--steps '$(STEPS)') $(if $(GIN),--gin '$(GIN)') \
	  $(if $(CPUS),--cpus '$(CPUS)') $(ARGS)

warmstart: $(STAMP) $(if $(filter fashion_mnist,$(DATASET)),data)
	$(PYTHON) -m warmstart.run --dataset '$(DATASET)' $(if $(MODEL),--model '$(MODEL)') \
	  $(if $(strip $(METHOD)),--methods $(METHOD)) $(if $(SEEDS_WS),--seeds '$(SEEDS_WS)') $(WS_ARGS)

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

bench: $(STAMP)
	$(PYTHON) -m atari100k.bench
	$(PYTHON) -m atari100k.bench_bbf $(BBF_BENCH_ARGS)

# On a GPU machine after 'make install GPU=1': speeds and projected hours (atari100k/gpu_check.py).
gpu-check: $(STAMP)
	$(PYTHON) -m atari100k.gpu_check

# Fashion-MNIST for the warm-start study (warmstart/data.py reads it from there).
data:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  { apt-get install -y dataset-fashion-mnist || sudo apt-get install -y dataset-fashion-mnist; }

clean-venv:
	rm -rf $(VENV)
