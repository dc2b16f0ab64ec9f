"""What importing ``contract`` costs: its core loads numpy alone and its image decoder (``contract.images``) Pillow
too, no engine, framework or web stack (the arrows between all the packages: tests/test_import_arrows.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.imports import imports_of
from tests.support.paths import REPO

PROJECT = "cifar10_pipeline"
HEAVY = ("onnxruntime", "onnx", "torch", "tensorflow", "flask", f"{PROJECT}.training", f"{PROJECT}.export",
         f"{PROJECT}.inference", f"{PROJECT}.model")


@pytest.mark.parametrize("module, loaded", [(f"{PROJECT}.contract", []), (f"{PROJECT}.contract.images", ["PIL"])])
def test_importing_contract_loads_no_engine_framework_or_web_stack(module, loaded):
    # the core stays numpy-only: Pillow is loaded by the image decoder alone
    probe = (f"import json, sys, {module}; "
             f"print(json.dumps(sorted({{n for n in {[*HEAVY, 'PIL']!r} for m in sys.modules "
             f"if m == n or m.startswith(n + '.')}})))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == loaded


# what each contract module may import besides the standard library and contract itself
CONTRACT_THIRD_PARTY = {"contract": {"numpy"}, "contract.images": {"numpy", "PIL"}}


def test_contract_modules_import_numpy_and_only_the_decoder_pillow():
    package = REPO / "src" / PROJECT / "contract"
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in sorted(package.rglob("*.py"))}
    assert set(modules) == set(CONTRACT_THIRD_PARTY), "a new contract module: say what it may import"
    for module, path in modules.items():
        imported = {name.split(".")[0] for name in imports_of(path)}
        assert imported - set(sys.stdlib_module_names) - {PROJECT} <= CONTRACT_THIRD_PARTY[module]
