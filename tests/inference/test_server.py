"""The server's command line (``python -m cifar10_pipeline.inference.server``): bad settings and taken ports exit 2,
thread defaults, and port 0: a free port, reported in the port file and held by the server."""

from __future__ import annotations

import errno
import os
import socket

import pytest

from cifar10_pipeline.inference.config import ServiceConfig
from harness.server import Server, call
from tests.support.onnx_models import write_model


@pytest.mark.parametrize("env, args, message", [
    ({"INFERENCE_BATCH_MAX_SIZE": "many"}, [], "INFERENCE_BATCH_MAX_SIZE='many' is not a valid int"),
    ({"INFERENCE_MAX_FILES": "0"}, [], "max_files must be >= 1, got 0"),
    ({"SERVER_THREADS": "two"}, [], "SERVER_THREADS='two' is not an integer"),
    ({"PORT": "http"}, [], "PORT='http' is not an integer"),
    ({}, ["--port", "70000"], "--port must be in 0..65535 (0: any free port), got 70000"),
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


@pytest.fixture
def taken_port():
    """A port another process listens on, as a server of its own would (SO_REUSEPORT set, as granian sets it)."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("flags, message", [
    (["--port", "{port}"], "--port {port}: cannot listen on 127.0.0.1:{port} (Address already in use); stop what "
                           "listens there or choose another port"),
    (["--port", "0", "--grpc-port", "{port}"], "--grpc-port {port}: cannot listen on 127.0.0.1:{port} (Address "
                                               "already in use)"),
])
def test_a_taken_port_is_refused_with_exit_2_before_any_worker_starts(monkeypatch, capsys, taken_port, flags,
                                                                        message):
    from cifar10_pipeline.inference import server

    # granian would join the taken port (SO_REUSEPORT, the same user) and serve beside its owner
    monkeypatch.setattr(server, "serve", lambda args: pytest.fail("started serving on a taken port"))
    code = server.main(["--host", "127.0.0.1", *(f.format(port=taken_port) for f in flags)])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {message.format(port=taken_port)}" in err, (code, err)


def test_a_host_that_is_not_this_machine_is_refused_with_exit_2(monkeypatch, capsys):
    from cifar10_pipeline.inference import server

    monkeypatch.setattr(server, "serve", lambda args: pytest.fail("started serving"))
    # TEST-NET-1 (RFC 5737): an address no machine here has; binding it sends nothing
    code = server.main(["--host", "192.0.2.1", "--port", "8000"])
    err = capsys.readouterr().err
    assert code == 2 and "--port 8000: cannot listen on 192.0.2.1:8000" in err
    assert "--host must name an address of this machine" in err


def test_server_threads_default_to_the_cpus_or_the_batch_size():
    from cifar10_pipeline.inference.config import default_threads

    cpus = len(os.sched_getaffinity(0))
    assert default_threads(ServiceConfig()) == cpus  # batching off: more threads only contend for the GIL
    assert default_threads(ServiceConfig(batch_max_size=32)) == max(cpus, 32)  # room for a full batch


@pytest.mark.slow  # a service start: every test through harness.server.served() starts it on port 0 too
def test_port_0_is_a_free_port_the_server_reports_serves_on_and_holds(tmp_path):
    # what every test and benchmark starts the service with (harness.server.Server); with two workers sharing the
    # port in test_workers.py
    model = write_model(tmp_path / "model.onnx", seed=0)
    with Server({"INFERENCE_MODEL_PATH": str(model)}, tmp_path / "server.log") as server:
        assert server.port != 0 and int((tmp_path / "server.log.port").read_text()) == server.port
        assert f"Listening at: http://127.0.0.1:{server.port}" in server.log.read_text()
        assert call(server.port, "GET", "/readyz")[0] == 200
        with socket.socket() as other, pytest.raises(OSError) as refused:
            other.bind(("127.0.0.1", server.port))
        assert refused.value.errno == errno.EADDRINUSE
