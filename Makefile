# CIFAR-10 pipeline. Every knob is a make variable, e.g.
#   make train-torch export DATASET=fashion-mnist EPOCHS=10
#   make serve MODEL=models/model.onnx PORT=8000
# `make help` lists the targets.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
DATASET ?= cifar10
DATA_DIR ?=
EPOCHS  ?=
PARAMS  ?=
RUN     ?=
MODEL   ?= models/model.onnx
PORT    ?= 8000
TRIALS  ?= 20
STORAGE ?=
BEST    ?= best_params.json
BENCH_OUT ?= bench-results

# flags the trainers share; an unset variable adds no flag, so --params and the defaults decide
TRAIN_ARGS = --dataset $(DATASET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
             $(if $(PARAMS),--params $(PARAMS))
INSTALLED := $(VENV)/.installed

.PHONY: help install system-deps quickstart train-torch export test bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,dev]'
	touch $@

install: $(INSTALLED)  ## virtual environment with the PyTorch, tuning, serving and test dependencies

system-deps:  ## Debian packages the tests use (root: installs them; otherwise lists them)
	@bash .ci/system-deps.sh

quickstart: install  ## offline demo: train on the synthetic data set, export with parity
	$(MAKE) train-torch export DATASET=synthetic EPOCHS=$(or $(EPOCHS),4)

train-torch: $(INSTALLED)  ## train with PyTorch (DATASET, DATA_DIR, EPOCHS, PARAMS)
	$(PY) -m training.train_torch $(TRAIN_ARGS)

export: $(INSTALLED)  ## export the last run (or RUN=runs/...) to MODEL with a parity check
	$(PY) -m export $(if $(RUN),--run $(RUN)) --out $(MODEL)

test: $(INSTALLED) system-deps  ## the whole test suite (CPU)
	$(PY) -m pytest

bench: $(INSTALLED)  ## benchmarks; figures go to BENCH_OUT as JSON and markdown
	$(PY) -m benchmarks.train --out $(BENCH_OUT)

clean:  ## remove runs, models, benchmark output and caches (not data/ or the venvs)
	rm -rf runs models $(BENCH_OUT) .pytest_cache
	find . -name __pycache__ -not -path './.venv*' -prune -exec rm -rf {} +
