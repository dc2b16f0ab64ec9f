"""BENCHMARKS.md sections: a full benchmark run replaces its own section and leaves the rest as written."""

from __future__ import annotations

from benchmarks.report import record_section


def test_a_section_is_appended_then_replaced_whole_and_the_rest_is_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nSetup, written by hand.\n")
    record_section(path, "train", "# Training\n\n| a |\n| 1 |\n", "python -m benchmarks.train --out x")
    record_section(path, "service", "# Serving\n\nfirst\n", "python -m benchmarks.service")
    record_section(path, "train", "# Training\n\n| a |\n| 2 |\n", "python -m benchmarks.train --out y")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nSetup, written by hand.\n")
    assert text.count("<!-- begin train -->") == 1 and "| 2 |" in text and "| 1 |" not in text
    assert "`python -m benchmarks.train --out y`" in text and "--out x" not in text
    assert text.index("<!-- begin train -->") < text.index("<!-- begin service -->")  # replaced in place
    assert "## Training" in text and "\n# Training" not in text  # headings one level below the file's title
