"""Fixtures of the export tests, which run for both frameworks (``--framework``): one exported tiny run."""

from __future__ import annotations

import pytest

from cifar10_pipeline.export.__main__ import main as export_main


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    assert export_main(["--run", str(trained.run.path), "--out", str(out)]) == 0
    return out
