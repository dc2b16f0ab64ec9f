"""``make install-tf``: TensorFlow with its CUDA wheels (``tensorflow[and-cuda]``, pinned by constraints-tf-gpu.txt)
where an NVIDIA GPU is visible or with GPU=1, plain ``tensorflow`` elsewhere or with GPU=0; an environment of the other
kind is made afresh. ``make -n`` prints the commands without running them; a fake nvidia-smi stands in for the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.make import dry_run

PLAIN = ["-c", "constraints-tf.txt", "-e", "'.[tf,tune]'"]
CUDA = ["-c", "constraints-tf.txt", "-c", "constraints-tf-gpu.txt", "-e", "'.[tf,tune]'", "'tensorflow[and-cuda]'"]


def _installs(commands: list[str]) -> list[str]:
    return [c for c in commands if " -m pip install " in c and "--upgrade pip" not in c]


@pytest.mark.parametrize("gpus, variables, cuda", [
    (1, [], True),
    (0, [], False),
    (0, ["GPU=1"], True),
    (2, ["GPU=0"], False),
])
def test_install_tf_has_the_cuda_wheels_exactly_where_a_gpu_is_or_gpu_says_so(tmp_path, fake_gpus, gpus, variables,
                                                                              cuda):
    fake_gpus(gpus)
    venv = tmp_path / "venv-tf"
    commands = dry_run("install-tf", f"TF_VENV={venv}", *variables)
    assert commands[0] == f"python3 -m venv {venv}"
    installs = _installs(commands)
    assert len(installs) == 1
    assert installs == [f"{venv}/bin/python -m pip install -q {' '.join(CUDA if cuda else PLAIN)}"]
    if not cuda:
        assert not any("and-cuda" in c or "constraints-tf-gpu" in c for c in commands)
    assert commands[-1] == f"touch {venv}/.installed-{'gpu' if cuda else 'cpu'}"
    # the test tools come on top, from the same wheels
    test_installs = _installs(dry_run(f"{venv}/.installed-test", f"TF_VENV={venv}", *variables))
    assert len(test_installs) == 2 and all(("'tensorflow[and-cuda]'" in c) == cuda for c in test_installs)


def _stamp(venv: Path, variant: str) -> None:
    venv.mkdir(exist_ok=True)
    (venv / f".installed-{variant}").touch()  # newer than pyproject.toml and the constraints files


@pytest.mark.parametrize("had, wanted", [("cpu", "1"), ("gpu", "0")])
def test_an_environment_of_the_other_kind_is_made_afresh(tmp_path, had, wanted):
    # pip would leave the CUDA wheels of a GPU environment behind, and add them to a CPU one in place
    venv = tmp_path / "venv-tf"
    _stamp(venv, had)
    commands = dry_run("install-tf", f"TF_VENV={venv}", f"GPU={wanted}")
    assert commands[0] == f"python3 -m venv --clear {venv}"
    assert ("'tensorflow[and-cuda]'" in _installs(commands)[0]) == (wanted == "1")


@pytest.mark.parametrize("variant, gpu", [("cpu", "0"), ("gpu", "1")])
def test_an_environment_of_the_wanted_kind_is_kept(tmp_path, variant, gpu):
    venv = tmp_path / "venv-tf"
    _stamp(venv, variant)
    assert dry_run("install-tf", f"TF_VENV={venv}", f"GPU={gpu}") == ["make: Nothing to be done for 'install-tf'."]
