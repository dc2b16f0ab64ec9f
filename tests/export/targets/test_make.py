"""``make targets``: after the export, cifar10-targets on MODEL, with the OpenVINO and tritonclient environments
made first when missing (onnxruntime-openvino in place of onnxruntime; tritonclient pinned apart), playwright added
to the project's environment for the browser row; ``make bench`` includes it. ``make -n`` prints the commands without running them."""

from __future__ import annotations

from pathlib import Path

from tests.support.make import dry_run


def stamped(folder: Path, name: str = ".installed") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()  # newer than pyproject.toml and the constraints files
    return folder


def test_make_targets_makes_the_missing_environments_then_runs_the_command(tmp_path):
    venv, openvino, tritonclient = stamped(tmp_path / "venv"), tmp_path / "openvino", tmp_path / "tritonclient"
    commands = dry_run("targets", f"VENV={venv}", f"OPENVINO_VENV={openvino}", f"TRITONCLIENT_VENV={tritonclient}",
                       "MODEL=elsewhere/m.onnx")
    assert commands[-1] == f"{venv}/bin/cifar10-targets --model elsewhere/m.onnx"
    assert (f"{openvino}/bin/python -m pip install -q -c constraints.txt -c constraints-openvino.txt "
            f"-e '.[serve-openvino]'") in commands
    assert (f"{tritonclient}/bin/python -m pip install -q -c constraints-tritonclient.txt 'tritonclient[http,grpc]'"
            in commands)
    assert f"{venv}/bin/python -m pip install -q -c constraints.txt -e '.[torch,tune,serve,targets]'" in commands
    stamped(openvino), stamped(tritonclient), stamped(venv, ".installed-targets")
    again = dry_run("targets", f"VENV={venv}", f"OPENVINO_VENV={openvino}", f"TRITONCLIENT_VENV={tritonclient}")
    assert again[-1] == f"{venv}/bin/cifar10-targets --model models/model.onnx"
    assert not [c for c in again if "pip install" in c]  # every environment made: nothing installed again


def test_make_bench_tables_the_targets_of_its_5_minute_run(tmp_path):
    venv = stamped(tmp_path / "venv")
    variables = [f"VENV={venv}", f"TF_VENV={stamped(tmp_path / 'tf', '.installed-cpu')}", "GPU=0",
                 f"OPENVINO_VENV={stamped(tmp_path / 'openvino')}", f"TRITONCLIENT_VENV={stamped(tmp_path / 'tc')}",
                 "BENCH_OUT=out"]
    commands = dry_run("bench", *variables)
    export = (f"{venv}/bin/cifar10-export --run out/runs/torch-5min-seed0 --out out/targets/model.onnx "
              "--quantize int8")
    assert export in commands
    assert any(c.endswith("targets MODEL=out/targets/model.onnx") for c in commands[commands.index(export):])
