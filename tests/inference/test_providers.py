"""Provider choice: the configured providers, each of which this onnxruntime build must have (else the app does
not start), or the GPU first when there is one, then the CPU."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from cifar10_pipeline.inference.app import create_app
from cifar10_pipeline.inference.config import ServiceConfig
from cifar10_pipeline.inference.providers import PREFERRED_PROVIDERS, check_providers, resolve_providers


def test_configured_providers_are_asked_for_in_their_order():
    assert resolve_providers(("CPUExecutionProvider",)) == ["CPUExecutionProvider"]
    check_providers(("CPUExecutionProvider",))  # in every build: no error


def test_without_a_configuration_the_preferred_ones_this_build_has():
    available = ort.get_available_providers()
    assert resolve_providers(()) == [p for p in PREFERRED_PROVIDERS if p in available]
    assert resolve_providers(())[-1] == "CPUExecutionProvider"


def test_unavailable_provider_is_refused_at_start(model_path):
    with pytest.raises(ValueError, match=r"providers \['NoSuchExecutionProvider'\] are not in this onnxruntime"):
        create_app(ServiceConfig(model_path=model_path, providers=("NoSuchExecutionProvider",)))
