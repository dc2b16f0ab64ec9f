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
NPROC   ?= 1
RESTARTS ?= 3
# MLflow: TRACKING=off turns tracking off for every command (the config's `tracking` field reads CIFAR10_TRACKING);
# REGISTER=1 makes `make export` register the file (NAME, else <dataset>-classifier) under ALIAS
TRACKING ?=
REGISTER ?=
NAME    ?=
ALIAS   ?=
UI_PORT ?= 5000
ifneq ($(TRACKING),)
export CIFAR10_TRACKING := $(TRACKING)
endif

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
# NPROC > 1: data-parallel training on NPROC devices of this machine (training/distributed.py). PyTorch: torchrun
# starts NPROC processes (DistributedDataParallel, gloo on the CPU, NCCL on GPUs) and restarts the group from the
# last checkpoint when one fails, up to RESTARTS times; TensorFlow: a MirroredStrategy over NPROC GPUs
TORCHRUN = $(if $(filter-out 1,$(NPROC)),$(BIN)/torchrun --standalone --nproc-per-node $(NPROC) \
           --max-restarts $(RESTARTS) --no-python )
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
# the MLflow UI: the full mlflow (its web app and server), in an environment of its own, since the training
# environments carry mlflow-skinny, the client without the UI and its server dependencies
MLFLOW_VENV ?= .venv-mlflow
MLFLOW_INSTALLED := $(MLFLOW_VENV)/.installed
# the framework registry (cifar10_pipeline.model.frameworks) finds each framework's environment through these
export VENV TF_VENV
# what the TensorFlow environment runs: the tests shared by both frameworks (trainers, export) and TensorFlow's own
# (network, trainer); each conftest.py leaves a framework's own tests out where that framework is not installed
TF_TESTS := tests/training/test_learning.py tests/training/test_resume.py tests/training/test_eval_every.py \
            tests/training/test_ema.py tests/training/test_cli.py tests/training/test_cuda.py \
            tests/training/test_keras_trainer.py \
            tests/model/test_keras_net.py tests/export \
            tests/tracking/test_training_runs.py tests/tracking/test_export.py \
            tests/benchmarks/test_tta_benchmark.py

.PHONY: help install install-tf web system-deps quickstart train-torch train-tf tune-torch tune-tf export serve predict \
        image serve-replicas serve-replicas-down rollout test test-images bench bench-tune bench-rollout stress clean \
        install-serve-gpu gpu-check test-gpu install-openvino install-tritonclient targets install-ui ui mutation

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

# the upload page's browser mode: onnxruntime-web from npm (pinned by web/package-lock.json), its wasm build copied
# into the package (src/cifar10_pipeline/web/ort/, not in git), whence the service and the serving image serve it
WEB_INSTALLED := src/cifar10_pipeline/web/ort/VERSION
$(WEB_INSTALLED): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --ignore-scripts
	$(PYTHON) src/cifar10_pipeline/web/__init__.py web/node_modules/onnxruntime-web/dist

web: $(WEB_INSTALLED)  ## onnxruntime-web (npm) for the page's browser mode; make install runs it where npm is

# without npm the service works as before; its page then says that browser mode is not installed
WEB_IF_NPM := $(if $(shell command -v npm),$(WEB_INSTALLED))
install: $(INSTALLED) $(WEB_IF_NPM)  ## virtual environment (.venv) with PyTorch, tuning, export and serving; the cifar10-* commands
	@command -v npm >/dev/null || echo "install: npm not found: the page's browser mode stays off (make web installs it)"

system-deps:  ## Debian packages the tests use (root: installs them; otherwise lists them)
	@bash .ci/system-deps.sh

quickstart: install  ## offline demo: train on the synthetic data set, export with parity
	$(MAKE) train-torch export DATASET=synthetic EPOCHS=$(or $(EPOCHS),4)

# NPROC > 1: flags, data set and device checked once first: torchrun would restart a group failing on them
train-torch: $(INSTALLED)  ## train with PyTorch (DATASET, DATA_DIR, EPOCHS, PARAMS, TRACKING; NPROC: processes, torchrun)
	$(if $(TORCHRUN),$(BIN)/cifar10-train --framework torch $(TRAIN_ARGS) --check)
	$(TORCHRUN)$(BIN)/cifar10-train --framework torch $(TRAIN_ARGS)

train-tf: $(TF_INSTALLED)  ## train with TensorFlow (DATASET, DATA_DIR, EPOCHS, PARAMS; NPROC: GPUs, MirroredStrategy)
	$(TF_VENV)/bin/cifar10-train --framework tensorflow $(TRAIN_ARGS) $(if $(filter-out 1,$(NPROC)),--replicas $(NPROC))

tune-torch: $(INSTALLED)  ## tune with Optuna and PyTorch (DATASET, EPOCHS, TRIALS, STORAGE, BEST, WORKERS, TUNE_FLAGS)
	$(BIN)/cifar10-tune --framework torch $(TUNE_ARGS)

tune-tf: $(TF_INSTALLED)  ## tune with Optuna and TensorFlow (same variables)
	$(TF_VENV)/bin/cifar10-tune --framework tensorflow $(TUNE_ARGS)

# cifar10-export runs itself in the environment of the run's framework (TF_VENV for a TensorFlow run)
export: $(INSTALLED)  ## export the last run (or RUN=runs/..., an MLflow run id, models:/NAME@ALIAS) to MODEL with parity; QUANTIZE=int8, REGISTER=1
	$(BIN)/cifar10-export $(if $(RUN),--run $(RUN)) --out $(MODEL) $(if $(QUANTIZE),--quantize $(QUANTIZE)) \
	    $(if $(filter-out 0,$(REGISTER)),--register $(NAME)) $(if $(ALIAS),--alias $(ALIAS))

serve: $(INSTALLED)  ## serve MODEL on PORT with granian (one worker process with threads: batching needs one process)
	INFERENCE_MODEL_PATH=$(MODEL) PORT=$(PORT) $(BIN)/cifar10-serve

image: $(WEB_INSTALLED)  ## build the CPU serving image with podman (root; layers reused), MODEL baked in as its default model
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

test: $(TEST_INSTALLED) $(TF_TEST_INSTALLED) $(WEB_INSTALLED) $(MLFLOW_INSTALLED) system-deps  ## the whole test suite (CPU): PyTorch env, then TensorFlow env
	$(PY) -m pytest -m "not containers and not gpu"
	$(TF_PY) -m pytest --framework tensorflow -m "not gpu" $(TF_TESTS)

# asks for a GPU before installing anything, as gpu-check does: without one it stops at once, exit 2
test-gpu:  ## on an NVIDIA GPU: the tests marked gpu (training in both frameworks and serving, on CUDA)
	@PYTHONPATH=src $(PYTHON) -m benchmarks.gpu_check --preflight
	$(MAKE) $(TEST_INSTALLED) $(TF_TEST_INSTALLED) install-serve-gpu
	$(PY) -m pytest -m gpu
	$(TF_PY) -m pytest --framework tensorflow -m gpu $(TF_TESTS)

$(MUTATION_INSTALLED): $(TEST_INSTALLED)
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,dev,api-test,mutation]'
	touch $@

# not part of make test: each module's mutants run its tests again, minutes per module on 2 CPUs
mutation: $(MUTATION_INSTALLED)  ## mutation testing (mutmut) of mutation/modules.toml; scores in BENCH_OUT/mutation
	nice -n 10 $(PY) -m mutation --out $(BENCH_OUT)/mutation

test-images: $(TEST_INSTALLED) $(WEB_INSTALLED)  ## build, lint and check both serving images with podman (root); run them: tests/deploy
	mkdir -p build
	$(PY) tests/support/onnx_models.py build/ci-model.onnx
	bash .ci/containers.sh build/ci-model.onnx
	$(PY) -m pytest -m containers tests/deploy

bench: $(INSTALLED) $(TF_INSTALLED)  ## benchmarks; figures go to BENCH_OUT as JSON and markdown
	$(PY) -m benchmarks.train --out $(BENCH_OUT)
	# each kind of TTA view on the same weights: the runs trained with the mirror and the shifts, in each framework
	$(PY) -m benchmarks.tta --runs $(foreach s,0 1 2,$(BENCH_OUT)/runs/torch-8-epochs-seed$(s)) --out $(BENCH_OUT)
	$(TF_PY) -m benchmarks.tta --runs $(foreach s,0 1 2,$(BENCH_OUT)/runs/tf-6min-seed$(s)) --out $(BENCH_OUT)
	# INT8 against float on the 5-minute PyTorch run the training benchmark keeps
	$(PY) -m benchmarks.quantize --run $(BENCH_OUT)/runs/torch-5min-seed0 --out $(BENCH_OUT)
	# every deployment target of that run's model, with its INT8 twin (the agreement table: targets.json, .md)
	$(BIN)/cifar10-export --run $(BENCH_OUT)/runs/torch-5min-seed0 --out $(BENCH_OUT)/targets/model.onnx --quantize int8
	$(MAKE) targets MODEL=$(BENCH_OUT)/targets/model.onnx
	$(PY) -m benchmarks.service --out $(BENCH_OUT)
	$(PY) -m benchmarks.grpc_load --out $(BENCH_OUT)
	$(PY) -m benchmarks.choices --out $(BENCH_OUT)
	$(PY) -m benchmarks.peers --out $(BENCH_OUT)

$(MLFLOW_INSTALLED): pyproject.toml constraints.txt constraints-ui.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install -q -c constraints.txt -c constraints-ui.txt -e '.[ui]'
	touch $@

install-ui: $(MLFLOW_INSTALLED)  ## the MLflow UI's environment (.venv-mlflow), made by the first make ui

# the store the trainers use: runs/mlflow.db, or a database MLFLOW_TRACKING_URI (a tracking server has its own UI)
ui: $(MLFLOW_INSTALLED)  ## the MLflow UI on 127.0.0.1:UI_PORT (5000): runs, curves, models, registered versions
	$(MLFLOW_VENV)/bin/mlflow ui --host 127.0.0.1 --port $(UI_PORT) --backend-store-uri \
	    $(or $(filter-out http://% https://%,$(MLFLOW_TRACKING_URI)),sqlite:///$(abspath runs)/mlflow.db)

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

# the service on onnxruntime's OpenVINO execution provider (INFERENCE_PROVIDERS=openvino): onnxruntime-openvino
# replaces onnxruntime, so it has an environment of its own; cifar10-targets runs its OpenVINO row there
OPENVINO_VENV ?= .venv-openvino
OPENVINO_INSTALLED := $(OPENVINO_VENV)/.installed
# NVIDIA's tritonclient (HTTP and gRPC, whose pins clash with the project's): the Triton check's model-config
# protobuf, and the client the v2 tests drive
TRITONCLIENT_VENV ?= build/venv-tritonclient
TRITONCLIENT_INSTALLED := $(TRITONCLIENT_VENV)/.installed
export OPENVINO_VENV TRITONCLIENT_VENV

$(OPENVINO_INSTALLED): pyproject.toml constraints.txt constraints-openvino.txt
	$(PYTHON) -m venv $(OPENVINO_VENV)
	$(OPENVINO_VENV)/bin/python -m pip install -q --upgrade pip
	$(OPENVINO_VENV)/bin/python -m pip install -q -c constraints.txt -c constraints-openvino.txt -e '.[serve-openvino]'
	touch $@

$(TRITONCLIENT_INSTALLED): constraints-tritonclient.txt
	$(PYTHON) -m venv $(TRITONCLIENT_VENV)
	$(TRITONCLIENT_VENV)/bin/python -m pip install -q -c constraints-tritonclient.txt 'tritonclient[http,grpc]'
	touch $@

install-openvino: $(OPENVINO_INSTALLED)  ## .venv-openvino: the service on onnxruntime-openvino (INFERENCE_PROVIDERS=openvino)

install-tritonclient: $(TRITONCLIENT_INSTALLED)  ## tritonclient[http,grpc] in its own environment (Triton check, v2 client tests)

# its own prerequisites make the OpenVINO and tritonclient environments: make bench runs it recursively, as the
# variables of those environments come after the bench rule
# playwright for the browser row (its Chromium is Debian's: system-deps) on top of what export installs
TARGETS_INSTALLED := $(VENV)/.installed-targets
$(TARGETS_INSTALLED): $(INSTALLED)
	$(PY) -m pip install -q -c constraints.txt -e '.[torch,tune,serve,targets]'
	touch $@

targets: $(TARGETS_INSTALLED) $(WEB_INSTALLED) system-deps $(OPENVINO_INSTALLED) $(TRITONCLIENT_INSTALLED)  ## after export: MODEL's targets and their table
	$(BIN)/cifar10-targets --model $(MODEL)

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
