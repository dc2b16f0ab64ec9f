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
WORKERS ?=
TUNE_FLAGS ?=
BUDGET  ?= 30
BENCH_OUT ?= bench-results
REPLICAS ?= 2
STRESS_FLAGS ?=

# flags the trainers share; an unset variable adds no flag, so --params and the defaults decide
TRAIN_ARGS = --dataset $(DATASET) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(EPOCHS),--epochs $(EPOCHS)) \
             $(if $(PARAMS),--params $(PARAMS))
BIN     := $(VENV)/bin
INSTALLED := $(VENV)/.installed
TEST_INSTALLED := $(VENV)/.installed-test
MUTATION_INSTALLED := $(VENV)/.installed-mutation
# tuning: the fixed config values (TRAIN_ARGS) plus the study's target, workers, storage and output
# (no WORKERS: cifar10-tune runs one worker per visible GPU, else one)
TUNE_ARGS = $(TRAIN_ARGS) --trials $(TRIALS) $(if $(WORKERS),--workers $(WORKERS)) --best $(BEST) \
            $(if $(STORAGE),--storage $(STORAGE)) $(TUNE_FLAGS)
# TensorFlow lives in its own environment: TensorFlow and PyTorch never share a process
TF_VENV ?= .venv-tf
TF_PY   := $(TF_VENV)/bin/python
# GPU=1: TensorFlow with its CUDA wheels (tensorflow[and-cuda], pinned by constraints-tf-gpu.txt), GPU=0: plain
# tensorflow. By default 1 where an NVIDIA GPU is visible, as the trainers judge it (training/gpus.py: nvidia-smi -L)
ifeq ($(origin GPU),undefined)
GPU := $(if $(filter-out 0,$(shell $(PYTHON) src/cifar10_pipeline/training/gpus.py 2>/dev/null)),1,0)
endif
TF_GPU := $(filter 1,$(GPU))
TF_VARIANT := $(if $(TF_GPU),gpu,cpu)
TF_OTHER_VARIANT := $(if $(TF_GPU),cpu,gpu)
TF_CONSTRAINTS := -c constraints-tf.txt$(if $(TF_GPU), -c constraints-tf-gpu.txt)
TF_CUDA := $(if $(TF_GPU),'tensorflow[and-cuda]')
# one stamp per variant: asking for the other one remakes the environment
TF_INSTALLED := $(TF_VENV)/.installed-$(TF_VARIANT)
TF_TEST_INSTALLED := $(TF_VENV)/.installed-test
# the framework registry (cifar10_pipeline.model.frameworks) finds each framework's environment through these
export VENV TF_VENV
# what the TensorFlow environment runs: the tests shared by both frameworks (trainers, export) and TensorFlow's own
# (network, trainer); each conftest.py leaves a framework's own tests out where that framework is not installed
TF_TESTS := tests/training/test_learning.py tests/training/test_resume.py tests/training/test_cli.py \
            tests/training/test_keras_trainer.py tests/model/test_keras_net.py tests/export

.PHONY: help install install-tf system-deps quickstart train-torch train-tf tune-torch tune-tf export serve predict \
        image serve-replicas serve-replicas-down rollout test test-images bench bench-tune bench-rollout stress clean \
        install-serve-gpu gpu-check mutation

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# what training, tuning, export and serving need; the test tools come on top, for make test only
$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve]'
	touch $@

$(TEST_INSTALLED): $(INSTALLED)
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,dev,api-test]'
	touch $@

# --clear when the environment holds the other variant: pip would leave the CUDA wheels behind
$(TF_INSTALLED): pyproject.toml constraints-tf.txt $(if $(TF_GPU),constraints-tf-gpu.txt)
	$(PYTHON) -m venv $(if $(wildcard $(TF_VENV)/.installed-$(TF_OTHER_VARIANT)),--clear )$(TF_VENV)
	$(TF_PY) -m pip install -q --upgrade pip
	$(TF_PY) -m pip install -q $(TF_CONSTRAINTS) -e '.[tf,tune]' $(TF_CUDA)
	touch $@

$(TF_TEST_INSTALLED): $(TF_INSTALLED)
	$(TF_PY) -m pip install -q $(TF_CONSTRAINTS) -e '.[tf,tune,dev]' $(TF_CUDA)
	touch $@

install-tf: $(TF_INSTALLED)  ## the TensorFlow environment (.venv-tf); with CUDA wheels where a GPU is (GPU=1|0)

install: $(INSTALLED)  ## virtual environment (.venv) with PyTorch, tuning, export and serving; the cifar10-* commands

system-deps:  ## Debian packages the tests use (root: installs them; otherwise lists them)
	@bash .ci/system-deps.sh

quickstart: install  ## offline demo: train on the synthetic data set, export with parity
	$(MAKE) train-torch export DATASET=synthetic EPOCHS=$(or $(EPOCHS),4)

train-torch: $(INSTALLED)  ## train with PyTorch (DATASET, DATA_DIR, EPOCHS, PARAMS)
	$(BIN)/cifar10-train --framework torch $(TRAIN_ARGS)

train-tf: $(TF_INSTALLED)  ## train with TensorFlow (DATASET, DATA_DIR, EPOCHS, PARAMS)
	$(TF_VENV)/bin/cifar10-train --framework tensorflow $(TRAIN_ARGS)

tune-torch: $(INSTALLED)  ## tune with Optuna and PyTorch (DATASET, EPOCHS, TRIALS, STORAGE, BEST, WORKERS, TUNE_FLAGS)
	$(BIN)/cifar10-tune --framework torch $(TUNE_ARGS)

tune-tf: $(TF_INSTALLED)  ## tune with Optuna and TensorFlow (same variables)
	$(TF_VENV)/bin/cifar10-tune --framework tensorflow $(TUNE_ARGS)

# cifar10-export runs itself in the environment of the run's framework (TF_VENV for a TensorFlow run)
export: $(INSTALLED)  ## export the last run (or RUN=runs/...) to MODEL with a parity check; QUANTIZE=int8 adds an INT8 twin
	$(BIN)/cifar10-export $(if $(RUN),--run $(RUN)) --out $(MODEL) $(if $(QUANTIZE),--quantize $(QUANTIZE))

serve: $(INSTALLED)  ## serve MODEL on PORT with granian (one worker process with threads: batching needs one process)
	INFERENCE_MODEL_PATH=$(MODEL) PORT=$(PORT) $(BIN)/cifar10-serve

image:  ## build the CPU serving image with podman (root; layers reused), MODEL baked in as its default model
	bash .ci/containers.sh --build-cpu $(MODEL)

serve-replicas: $(INSTALLED) image  ## REPLICAS containers serving MODEL behind HAProxy on PORT (Ctrl-C removes all)
	$(BIN)/cifar10-replicas up --replicas $(REPLICAS) --model $(MODEL) --port $(PORT)

serve-replicas-down: $(INSTALLED)  ## remove the replicas and HAProxy a serve-replicas left (not stopped by Ctrl-C)
	$(BIN)/cifar10-replicas down

rollout: $(INSTALLED)  ## give the running replicas MODEL, one after the other; stops at a replica that refuses it
	$(BIN)/cifar10-replicas rollout --model $(MODEL)

predict: $(INSTALLED)  ## classify IMAGES (files or folders) with MODEL, no server; JSON lines on stdout
	$(if $(IMAGES),,$(error IMAGES is empty: make predict IMAGES="photo.jpg photos/"))
	$(BIN)/cifar10-predict --model $(MODEL) $(IMAGES)

test: $(TEST_INSTALLED) $(TF_TEST_INSTALLED) system-deps  ## the whole test suite (CPU): PyTorch env, then TensorFlow env
	$(PY) -m pytest -m "not containers"
	$(TF_PY) -m pytest --framework tensorflow $(TF_TESTS)

$(MUTATION_INSTALLED): $(TEST_INSTALLED)
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,dev,api-test,mutation]'
	touch $@

# not part of make test: each module's mutants run its tests again, minutes per module on 2 CPUs
mutation: $(MUTATION_INSTALLED)  ## mutation testing (mutmut) of mutation/modules.toml; scores in BENCH_OUT/mutation
	nice -n 10 $(PY) -m mutation --out $(BENCH_OUT)/mutation

test-images: $(TEST_INSTALLED)  ## build, lint and check both serving images with podman (root); run them: tests/deploy
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

# the service on onnxruntime-gpu, as the GPU image has it: what make gpu-check serves with
SERVE_GPU_VENV ?= .venv-serve-gpu
SERVE_GPU_INSTALLED := $(SERVE_GPU_VENV)/.installed
export SERVE_GPU_VENV

$(SERVE_GPU_INSTALLED): pyproject.toml constraints.txt constraints-gpu.txt
	$(PYTHON) -m venv $(SERVE_GPU_VENV)
	$(SERVE_GPU_VENV)/bin/python -m pip install -q --upgrade pip
	$(SERVE_GPU_VENV)/bin/python -m pip install -q -c constraints.txt -c constraints-gpu.txt -e '.[serve-gpu]'
	touch $@

install-serve-gpu: $(SERVE_GPU_INSTALLED)  ## the service on onnxruntime-gpu (.venv-serve-gpu), for make gpu-check

# asks for a GPU before installing anything: without one it stops at once, exit 2
gpu-check:  ## on an NVIDIA GPU: train, tune, export and serve on CUDA, failing at the first step on the CPU (~10 min)
	@PYTHONPATH=src $(PYTHON) -m benchmarks.gpu_check --preflight
	$(MAKE) install install-tf install-serve-gpu
	$(PY) -m benchmarks.gpu_check --out $(BENCH_OUT)/gpu-check

bench-rollout: $(INSTALLED) image  ## rollout and replica-kill figures under load behind HAProxy (podman, root)
	$(PY) -m benchmarks.rollout --replicas $(REPLICAS) --out $(BENCH_OUT)

bench-tune: $(INSTALLED)  ## tuning benchmark on Fashion-MNIST: tuned vs default, pruning vs none (BUDGET minutes)
	$(PY) -m benchmarks.tune --budget-minutes $(BUDGET) --out $(BENCH_OUT)

stress: $(INSTALLED) $(TF_INSTALLED)  ## reliability figures (fuzz, soak, swaps, kill -9): BENCH_OUT, RELIABILITY.md; STRESS_FLAGS="--only fuzz"
	$(PY) -m reliability --out $(BENCH_OUT) $(STRESS_FLAGS)

clean:  ## remove runs, models, benchmark output and caches (not data/ or the venvs)
	rm -rf runs models studies build $(BENCH_OUT) .pytest_cache
	find . -name __pycache__ -not -path './.venv*' -prune -exec rm -rf {} +
