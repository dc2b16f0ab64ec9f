"""Provider choice: the configured providers, each of which this onnxruntime build must have (else the app does
not start), or the GPU first when there is one, then the CPU; a provider asked for that the session runs without
(CUDA without a GPU) is shown in /info and logged, with why."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from cifar10_pipeline.inference import providers
from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.providers import (CUDA, PREFERRED_PROVIDERS, check_providers, not_started,
                                                  provider_library, resolve_providers, why_not_started)


def test_configured_providers_are_asked_for_in_their_order():
    assert resolve_providers(("CPUExecutionProvider",)) == ["CPUExecutionProvider"]
    check_providers(("CPUExecutionProvider",))  # in every build: no error


def test_short_names_stand_for_onnxruntimes_names_in_any_case(make_app):
    assert resolve_providers(("cpu",)) == resolve_providers(("CPU",)) == ["CPUExecutionProvider"]
    info = make_app(providers=("Cpu",)).test_client().get("/info").json
    assert info["providers"]["requested"] == info["providers"]["active"] == ["CPUExecutionProvider"]
    # the OpenVINO provider is not in this build: refused, with where it comes from
    with pytest.raises(ValueError, match=r"\['OpenVINOExecutionProvider'\] are not in this onnxruntime build .*"
                                         r"onnxruntime-openvino, which replaces onnxruntime \(make install-openvino"):
        check_providers(("openvino",))


def test_without_a_configuration_the_preferred_ones_this_build_has():
    available = ort.get_available_providers()
    assert resolve_providers(()) == [p for p in PREFERRED_PROVIDERS if p in available]
    assert resolve_providers(())[-1] == "CPUExecutionProvider"


def test_unavailable_provider_is_refused_at_start(model_path):
    with pytest.raises(ValueError, match=r"providers \['NoSuchExecutionProvider'\] are not in this onnxruntime"):
        create_app(ServiceConfig(model_path=model_path, providers=("NoSuchExecutionProvider",)))


# the CPU build warns that it has no CUDA provider, then runs the session on the CPU: the fallback this test is about
@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_cuda_asked_for_that_does_not_start_is_shown_in_info_and_logged_once(make_app, monkeypatch, caplog):
    # the GPU build on a machine without a GPU: CUDA is in the build, so the service asks for it first, and
    # onnxruntime (here the CPU build, which lacks it) starts the session on the CPU alone
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    preloaded = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: preloaded.append(True))
    with caplog.at_level(logging.WARNING, logger="cifar10_pipeline.inference.holder"):
        info = make_app().test_client().get("/info").json
    assert preloaded == [True]
    providers = info["providers"]
    assert providers["requested"] == [CUDA, "CPUExecutionProvider"]
    assert providers["active"] == ["CPUExecutionProvider"]
    assert list(providers["not_started"]) == [CUDA]
    assert providers["not_started"][CUDA] == why_not_started(CUDA)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{CUDA} was asked for but did not start, serving on ['CPUExecutionProvider']: "
                        f"{why_not_started(CUDA)}"]


def test_providers_that_all_started_leave_nothing_not_started(client):
    providers = client.get("/info").json["providers"]
    assert providers["requested"] == ["CPUExecutionProvider"] and providers["active"] == ["CPUExecutionProvider"]
    assert providers["not_started"] == {}


def test_not_started_lists_each_requested_provider_missing_from_the_session():
    assert not_started([CUDA, "CPUExecutionProvider"], ("CPUExecutionProvider",)) == {CUDA: why_not_started(CUDA)}
    assert not_started([CUDA, "CPUExecutionProvider"], (CUDA, "CPUExecutionProvider")) == {}


def test_why_a_provider_did_not_start_comes_from_loading_its_library(tmp_path, monkeypatch):
    monkeypatch.setattr(providers, "PROVIDER_LIBRARIES", tmp_path)
    library = tmp_path / "libonnxruntime_providers_cuda.so"
    assert provider_library(CUDA) == library
    assert why_not_started(CUDA) == ("onnxruntime did not start it (it has no libonnxruntime_providers_cuda.so "
                                     "to check); its own log says why")
    # a library the loader refuses: its error is the reason (in the GPU image without a driver, the missing
    # libcuda.so.1)
    library.write_bytes(b"not a shared library".ljust(4096, b"\0"))
    reason = why_not_started(CUDA)
    assert reason.startswith("libonnxruntime_providers_cuda.so cannot be loaded: ")
    assert str(library) in reason and "invalid ELF header" in reason
    # a library that loads: the provider itself refused the machine
    shutil.copy(Path(ort.__file__).parent / "capi/libonnxruntime_providers_shared.so", library)
    assert why_not_started(CUDA).startswith("libonnxruntime_providers_cuda.so loads, but the provider did not start")
