"""Fixtures of the inference service tests.

Every app is built by ``create_app`` around a tiny model from ``onnx_models`` whose answer is known in
numpy (a linear layer on the mean colour), so predictions are checked against ``tests.support.reference``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig
from tests.support.onnx_models import write_model
from tests.support.paths import REPO

CONSTRAINTS = REPO / "constraints.txt"
CHROMIUM = "/usr/bin/chromium"  # Debian's package: Playwright cannot download its own browsers here


@pytest.fixture
def model_path(tmp_path) -> Path:
    return write_model(tmp_path / "model.onnx", seed=0)


@pytest.fixture
def make_app(model_path):
    """Build apps with config overrides; hot swapping is off unless asked. Closes their threads after."""
    apps = []

    def make(**overrides):
        config = ServiceConfig(**{"model_path": model_path, "reload_poll_s": 0.0, **overrides})
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["inference"].close()


@pytest.fixture
def client(make_app):
    return make_app().test_client()


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory) -> Path:
    """A new venv with the project installed from the repository with its `serve` extra (pinned), as the CPU image
    installs it: ``pip install '.[serve]'``."""
    venv = tmp_path_factory.mktemp("serve") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "--disable-pip-version-check", "-c", CONSTRAINTS, f"{REPO}[serve]"],
        check=True,
        timeout=900,
    )
    return venv


@pytest.fixture
def serve_live():
    """``serve_live(model_path, **overrides)``: the app serving that file on 127.0.0.1 (a free port) in this process,
    with those ServiceConfig overrides; its URL. Stopped after the test."""
    stops = []

    def serve(model_path: Path, **overrides) -> str:
        app = create_app(ServiceConfig(**{"model_path": model_path, "reload_poll_s": 0, **overrides}))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        stops.append((server, thread, app))
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    for server, thread, app in stops:
        server.shutdown()
        thread.join()
        app.extensions["inference"].close()


@pytest.fixture
def live_server(serve_live, tmp_path):
    return serve_live(write_model(tmp_path / "model.onnx", seed=0))


@pytest.fixture
def page(live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        page = browser.new_page()
        page.goto(live_server)
        yield page
        browser.close()
