"""Figures on disk and in the documents: a full run replaces its own section of BENCHMARKS.md or RELIABILITY.md
and leaves the rest as written; every run writes its JSON and markdown."""

from __future__ import annotations

import json
import multiprocessing

from harness.report import record_section, write_figures


def test_a_section_is_appended_then_replaced_whole_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nSetup, written by hand.\n")
    record_section(path, "train", "# Training\n\n| a |\n| 1 |\n", "python -m benchmarks.train --out x", "make bench")
    record_section(path, "service", "# Serving\n\nfirst\n", "python -m benchmarks.service", "make bench")
    record_section(path, "train", "# Training\n\n| a |\n| 2 |\n", "python -m benchmarks.train --out y", "make bench")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nSetup, written by hand.\n")
    assert text.count("<!-- begin train -->") == 1 and "| 2 |" in text and "| 1 |" not in text
    assert "`python -m benchmarks.train --out y`" in text and "--out x" not in text
    assert text.index("<!-- begin train -->") < text.index("<!-- begin service -->")  # replaced in place
    assert "## Training" in text and "\n# Training" not in text  # headings one level below the file's title
    assert "(part of `make bench`; run " in text


def test_figures_are_written_as_json_and_markdown(tmp_path, capsys):
    write_figures(tmp_path / "out", "stress-fuzz", {"inputs": 3, "goals": []}, "# Fuzz\n\n| a |\n")
    assert json.loads((tmp_path / "out" / "stress-fuzz.json").read_text()) == {"inputs": 3, "goals": []}
    assert (tmp_path / "out" / "stress-fuzz.md").read_text() == "# Fuzz\n\n| a |\n"
    assert "# Fuzz" in capsys.readouterr().out  # the table is printed too


def _record_many(path, writer: int, start) -> None:
    start.wait()
    for i in range(25):
        record_section(path, f"w{writer}-{i}", f"# W{writer} {i}\n", "python -m benchmarks.x", "make bench")


def test_benchmarks_recording_side_by_side_keep_every_section(tmp_path):
    path = tmp_path / "BENCHMARKS.md"  # not there yet: the first to record makes it
    start = multiprocessing.get_context("fork").Barrier(4)
    writers = [multiprocessing.get_context("fork").Process(target=_record_many, args=(path, w, start))
               for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=60)
    assert [p.exitcode for p in writers] == [0] * 4
    text = path.read_text()
    assert text.startswith("# Benchmarks\n")
    missing = [f"w{w}-{i}" for w in range(4) for i in range(25) if text.count(f"<!-- begin w{w}-{i} -->") != 1]
    assert missing == []
