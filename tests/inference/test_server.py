"""The server's command line (``python -m cifar10_pipeline.inference.server``): bad settings exit 2, thread defaults."""

from __future__ import annotations

import os

import pytest

from cifar10_pipeline.inference.config import ServiceConfig


@pytest.mark.parametrize("env, args, message", [
    ({"INFERENCE_BATCH_MAX_SIZE": "many"}, [], "INFERENCE_BATCH_MAX_SIZE='many' is not a valid int"),
    ({"INFERENCE_MAX_FILES": "0"}, [], "max_files must be >= 1, got 0"),
    ({"SERVER_THREADS": "two"}, [], "SERVER_THREADS='two' is not an integer"),
    ({"PORT": "http"}, [], "PORT='http' is not an integer"),
    ({}, ["--port", "70000"], "--port must be in 1..65535, got 70000"),
    ({}, ["--threads", "0"], "--threads must be >= 1, got 0"),
    ({}, ["--workers", "0"], "--workers must be >= 1, got 0"),
    ({"SERVER_WORKERS": "a few"}, [], "SERVER_WORKERS='a few' is not an integer"),
    ({"GRPC_PORT": "grpc"}, [], "GRPC_PORT='grpc' is not a valid int"),
    ({"GRPC_PORT": "70000"}, [], "grpc_port must be in 0..65535 (0: off), got 70000"),
    ({}, ["--grpc-port", "8000", "--port", "8000"], "--grpc-port must be 0 (off) or in 1..65535 and not --port"),
    # the CPU image's onnxruntime has no CUDA provider: asking for the GPU there is an error, not a CPU fallback
    ({"INFERENCE_PROVIDERS": "CUDAExecutionProvider"}, [],
     "providers ['CUDAExecutionProvider'] are not in this onnxruntime build"),
])
def test_server_cli_refuses_bad_settings_with_exit_2(monkeypatch, capsys, env, args, message):
    from cifar10_pipeline.inference import server

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        code = server.main(args)
    except SystemExit as e:  # argparse's errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and message in err, (code, err)


def test_server_threads_default_to_the_cpus_or_the_batch_size():
    from cifar10_pipeline.inference.config import default_threads

    cpus = len(os.sched_getaffinity(0))
    assert default_threads(ServiceConfig()) == cpus  # batching off: more threads only contend for the GIL
    assert default_threads(ServiceConfig(batch_max_size=32)) == max(cpus, 32)  # room for a full batch
