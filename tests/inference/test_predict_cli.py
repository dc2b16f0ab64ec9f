"""``cifar10-predict`` (``inference.predict_cli``): offline classification with the service's model loading,
decoding and ranking; bad files reported and skipped; a progress bar on a terminal only."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from cifar10_pipeline.inference.predict_cli import main, progress_bar
from tests.support.api import post_files
from tests.support.images import COLOUR, png
from tests.support.onnx_models import CIFAR10_LABELS, write_model
from tests.support.paths import REPO
from tests.support.reference import expected_label

BLUE, GREEN = (20, 40, 220), (30, 200, 40)


@pytest.fixture
def photos(tmp_path):
    """red.png at the top, a folder with blue and green (one level down) and a file that is no image."""
    (tmp_path / "red.png").write_bytes(png(COLOUR))
    (tmp_path / "more" / "deeper").mkdir(parents=True)
    (tmp_path / "more" / "blue.png").write_bytes(png(BLUE))
    (tmp_path / "more" / "deeper" / "green.PNG").write_bytes(png(GREEN, size=(300, 200)))
    (tmp_path / "more" / "notes.txt").write_text("not an image, and not searched for in a folder")
    return tmp_path


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_files_and_folders_are_classified_as_the_reference_model_does(photos, model_path, capsys):
    code, out, err = run(capsys, "--model", model_path, "--top-k", "10", photos / "red.png", photos / "more")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in rows] == [str(photos / p) for p in ("red.png", "more/blue.png", "more/deeper/green.PNG")]
    assert [r["label"] for r in rows] == [expected_label(c) for c in (COLOUR, BLUE, GREEN)]
    assert all(len(r["top_k"]) == 10 and r["top_k"][0]["label"] == r["label"] for r in rows)
    assert sorted(t["label"] for t in rows[0]["top_k"]) == sorted(CIFAR10_LABELS)
    assert "3 of 3 images classified" in err


def test_the_answer_is_the_services_for_the_same_file(photos, model_path, client, capsys):
    served = post_files(client, [("red.png", (photos / "red.png").read_bytes())], "?top_k=4").json["predictions"][0]
    code, out, _ = run(capsys, "--model", model_path, "--top-k", "4", photos / "red.png")
    offline = json.loads(out)
    assert code == 0 and offline["top_k"] == served["top_k"] and offline["probability"] == served["probability"]


def test_batches_of_any_size_give_the_same_rows(photos, model_path, capsys):
    outputs = [run(capsys, "--model", model_path, "--batch-size", str(b), photos)[1] for b in (1, 2, 64)]
    assert outputs[0] == outputs[1] == outputs[2] and outputs[0].count("\n") == 3


def test_csv_output_to_a_file(photos, model_path, tmp_path, capsys):
    out = tmp_path / "predictions.csv"
    code, stdout, _ = run(capsys, "--model", model_path, "--format", "csv", "--out", out, photos / "more")
    assert code == 0 and stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["label"] for r in rows] == [expected_label(BLUE), expected_label(GREEN)]
    assert all(r["top_k"].split(" ")[0].startswith(r["label"] + ":") for r in rows)
    assert 0 < float(rows[0]["probability"]) <= 1


def test_a_bad_file_is_reported_and_skipped_and_the_exit_status_says_so(photos, model_path, capsys):
    (photos / "broken.png").write_bytes(png()[:40])
    code, out, err = run(capsys, "--model", model_path, photos / "red.png", photos / "broken.png",
                         photos / "missing.png", photos / "more" / "notes.txt")
    assert code == 1
    assert [json.loads(line)["file"] for line in out.splitlines()] == [str(photos / "red.png")]
    assert "broken.png" in err and "missing.png" in err and "notes.txt" in err and "1 of 4 images" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("make_args, message", [
    (lambda p, m: ["--model", p / "absent.onnx", p], "No such file or directory"),
    (lambda p, m: ["--model", p / "red.png", p], "onnxruntime cannot load it"),
    (lambda p, m: ["--model", m, p / "empty"], "no image found"),
    (lambda p, m: ["--model", m, "--providers", "NoSuchExecutionProvider", p], "not in this onnxruntime build"),
])
def test_what_stops_the_whole_command_exits_2(photos, model_path, capsys, make_args, message):
    (photos / "empty").mkdir()
    code, out, err = run(capsys, *make_args(photos, model_path))
    assert code == 2 and message in err and out == ""


def test_a_refused_model_is_never_used(photos, tmp_path, capsys):
    bad = write_model(tmp_path / "bad.onnx", golden={"seed": 0, "batch": 2, "logits": [[0.0] * 10] * 2})
    code, _, err = run(capsys, "--model", bad, photos)
    assert code == 2 and "golden self-test" in err


def test_it_imports_what_the_service_imports_and_nothing_more():
    # tqdm draws the progress bar: it is in the serving extra, as everything else this command imports
    probe = ("import sys, cifar10_pipeline.inference.predict_cli; "
             "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'cifar10_pipeline.training', "
             "'cifar10_pipeline.export') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_draws_on_a_terminal_only():
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        with progress_bar(3, stream) as bar:
            bar.update(2)
            bar.update(1)
    assert "\r[" + "#" * 30 + "] 3/3 images" in terminal.getvalue() and terminal.getvalue().endswith("/s\n")
    assert pipe.getvalue() == ""
