"""A folder of photos of mixed sizes, modes and formats trains (``--framework``) and exports at the size it was
decoded to, the export reading the training run's decoded arrays from the cache."""

from __future__ import annotations

import onnx

from cifar10_pipeline.export.__main__ import main as export_main
from cifar10_pipeline.training.run import Run
from tests.support.images import write_photos
from tests.support.runs import train_cli


def test_a_folder_of_photos_of_mixed_sizes_trains_and_exports(tmp_path, framework, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the decoded arrays' cache
    photos = tmp_path / "photos"
    write_photos(photos, {"train": 16, "test": 6}, classes=("ant", "bee", "cow"))  # 40x40 .. 300x300, every mode
    args = ["--dataset", "folder", "--data-dir", str(photos), "--image-size", "16", "--epochs", "1", "--width", "8",
            "--batch-size", "16", "--runs-dir", str(tmp_path / "runs")]
    code, _, err = train_cli(framework, args, capsys)
    assert code == 0, err
    assert "66 images of" in err and "decoded to 16x16x3" in err  # (16 + 6) x 3 classes
    run = Run.open(None, tmp_path / "runs")
    assert run.info["classes"] == ["ant", "bee", "cow"] and run.config.image_size == 16
    out = tmp_path / "model.onnx"
    assert export_main(["--run", str(run.path), "--out", str(out)]) == 0
    assert "from the cache" in capsys.readouterr().err  # the export reads the training run's decoded arrays
    model = onnx.load(out)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]] == [16, 16, 3]
    assert {p.key: p.value for p in model.metadata_props}["dataset"] == "folder"
