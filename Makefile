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
QUANTIZE ?=
PORT    ?= 8000
IMAGES  ?=
TRIALS  ?= 20
STORAGE ?=
BEST    ?= best_params.json
WORKERS ?= 1
TUNE_FLAGS ?=
BUDGET  ?= 30
BENCH_OUT ?= bench-results
REPLICAS ?= 2
STRESS_FLAGS ?=

# flags the trainers share; an unset variable adds no flag, so --params and the defaults decide
TRAIN_ARGS = --dataset $(DATASET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
             $(if $(PARAMS),--params $(PARAMS))
INSTALLED := $(VENV)/.installed
# tuning: the fixed config values (TRAIN_ARGS) plus the study's target, workers, storage and output
TUNE_ARGS = $(TRAIN_ARGS) --trials $(TRIALS) --workers $(WORKERS) --best $(BEST) \
            $(if $(STORAGE),--storage $(STORAGE)) $(TUNE_FLAGS)
# TensorFlow lives in its own environment: TensorFlow and PyTorch never share a process
TF_VENV ?= .venv-tf
TF_PY   := $(TF_VENV)/bin/python
TF_INSTALLED := $(TF_VENV)/.installed
# TensorFlow-only tests; the shared ones (the trainers' and the export's) run in both environments
TF_TESTS := tests/training/test_train_tf.py tests/export/test_keras_runner.py tests/export/test_cross_framework.py
SHARED_TESTS := tests/training/test_trainers.py tests/export
# the framework that made the run to export (RUN, else runs/LAST.json), read when the export recipe runs
RUN_FRAMEWORK = $(shell $(PYTHON) -c 'import json, sys; from pathlib import Path; \
    run = sys.argv[1] or json.loads(Path("runs/LAST.json").read_text())["run"]; \
    print(json.loads((Path(run) / "run.json").read_text())["framework"])' '$(RUN)' 2>/dev/null)

.PHONY: help install install-tf system-deps quickstart train-torch train-tf tune-torch tune-tf export serve predict \
        image serve-replicas serve-replicas-down rollout test test-images bench bench-tune bench-rollout stress clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,dev,api-test]'
	touch $@

$(TF_INSTALLED): pyproject.toml constraints-tf.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_PY) -m pip install -q --upgrade pip
	$(TF_PY) -m pip install -q -c constraints-tf.txt -e '.[tf,tune,dev]'
	touch $@

install-tf: $(TF_INSTALLED)  ## the TensorFlow environment (.venv-tf): trainer, exporter, tuner, tests

install: $(INSTALLED)  ## virtual environment with the PyTorch, tuning, serving and test dependencies

system-deps:  ## Debian packages the tests use (root: installs them; otherwise lists them)
	@bash .ci/system-deps.sh

quickstart: install  ## offline demo: train on the synthetic data set, export with parity
	$(MAKE) train-torch export DATASET=synthetic EPOCHS=$(or $(EPOCHS),4)

train-torch: $(INSTALLED)  ## train with PyTorch (DATASET, DATA_DIR, EPOCHS, PARAMS)
	$(PY) -m training.train_torch $(TRAIN_ARGS)

train-tf: $(TF_INSTALLED)  ## train with TensorFlow (DATASET, DATA_DIR, EPOCHS, PARAMS)
	$(TF_PY) -m training.train_tf $(TRAIN_ARGS)

tune-torch: $(INSTALLED)  ## tune with Optuna and PyTorch (DATASET, EPOCHS, TRIALS, STORAGE, BEST, WORKERS, TUNE_FLAGS)
	$(PY) -m training.tuning --framework torch $(TUNE_ARGS)

tune-tf: $(TF_INSTALLED)  ## tune with Optuna and TensorFlow (same variables)
	$(TF_PY) -m training.tuning --framework tensorflow $(TUNE_ARGS)

export: $(INSTALLED)  ## export the last run (or RUN=runs/...) to MODEL with a parity check; QUANTIZE=int8 adds an INT8 twin
	$(if $(filter tensorflow,$(RUN_FRAMEWORK)),$(TF_PY),$(PY)) -m export $(if $(RUN),--run $(RUN)) --out $(MODEL) \
	    $(if $(QUANTIZE),--quantize $(QUANTIZE))

serve: $(INSTALLED)  ## serve MODEL on PORT with granian (one worker process with threads: batching needs one process)
	INFERENCE_MODEL_PATH=$(MODEL) PORT=$(PORT) $(PY) -m inference.server

image:  ## build the CPU serving image with podman (root; layers reused), MODEL baked in as its default model
	bash .ci/containers.sh --build-cpu $(MODEL)

serve-replicas: $(INSTALLED) image  ## REPLICAS containers serving MODEL behind HAProxy on PORT (Ctrl-C removes all)
	$(PY) -m deploy.replicas up --replicas $(REPLICAS) --model $(MODEL) --port $(PORT)

serve-replicas-down: $(INSTALLED)  ## remove the replicas and HAProxy a serve-replicas left (not stopped by Ctrl-C)
	$(PY) -m deploy.replicas down

rollout: $(INSTALLED)  ## give the running replicas MODEL, one after the other; stops at a replica that refuses it
	$(PY) -m deploy.replicas rollout --model $(MODEL)

predict: $(INSTALLED)  ## classify IMAGES (files or folders) with MODEL, no server; JSON lines on stdout
	$(if $(IMAGES),,$(error IMAGES is empty: make predict IMAGES="photo.jpg photos/"))
	$(PY) -m inference.predict --model $(MODEL) $(IMAGES)

test: $(INSTALLED) $(TF_INSTALLED) system-deps  ## the whole test suite (CPU): PyTorch env, then TensorFlow env
	$(PY) -m pytest -m "not containers" $(addprefix --ignore=,$(TF_TESTS))
	TORCH_PYTHON=$(PY) $(TF_PY) -m pytest --framework tensorflow $(SHARED_TESTS) $(TF_TESTS)

test-images: $(INSTALLED)  ## build, lint, run and check both serving images with podman (root); replica tests
	mkdir -p build
	$(PY) tests/support/onnx_models.py build/ci-model.onnx
	bash .ci/containers.sh build/ci-model.onnx
	$(PY) -m pytest -m containers tests/deploy

bench: $(INSTALLED) $(TF_INSTALLED)  ## benchmarks; figures go to BENCH_OUT as JSON and markdown
	$(PY) -m benchmarks.train --out $(BENCH_OUT)
	# INT8 against float on the 5-minute PyTorch run the training benchmark keeps
	$(PY) -m benchmarks.quantize --run $(BENCH_OUT)/runs/torch-5min-seed0 --out $(BENCH_OUT)
	$(PY) -m benchmarks.service --out $(BENCH_OUT)
	$(PY) -m benchmarks.choices --out $(BENCH_OUT)
	$(PY) -m benchmarks.peers --out $(BENCH_OUT)

bench-rollout: $(INSTALLED) image  ## rollout and replica-kill figures under load behind HAProxy (podman, root)
	$(PY) -m benchmarks.rollout --replicas $(REPLICAS) --out $(BENCH_OUT)

bench-tune: $(INSTALLED)  ## tuning benchmark on Fashion-MNIST: tuned vs default, pruning vs none (BUDGET minutes)
	$(PY) -m benchmarks.tune --budget-minutes $(BUDGET) --out $(BENCH_OUT)

stress: $(INSTALLED) $(TF_INSTALLED)  ## reliability figures (fuzz, soak, swaps, kill -9): BENCH_OUT, RELIABILITY.md; STRESS_FLAGS="--only fuzz"
	$(PY) -m benchmarks.stress --out $(BENCH_OUT) $(STRESS_FLAGS)

clean:  ## remove runs, models, benchmark output and caches (not data/ or the venvs)
	rm -rf runs models studies build $(BENCH_OUT) .pytest_cache
	find . -name __pycache__ -not -path './.venv*' -prune -exec rm -rf {} +
