"""The stress benchmark's smoke mode (the serving scenarios, shortened) holds the same goals as the full run:
no 5xx and no worker restart under fuzzing, no error and no memory growth in the soak, every broken model
refused and every good one served during swaps under load. And its command line's errors are clear."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from benchmarks.stress import __main__ as stress
from tests.support.paths import REPO

SERVING = ("fuzz", "soak", "swaps")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The serving scenarios' smoke run: (exit status, output, {scenario: figures}, {scenario: markdown})."""
    out = tmp_path_factory.mktemp("stress")
    reliability = stress.RELIABILITY_MD.read_bytes() if stress.RELIABILITY_MD.exists() else None
    done = subprocess.run([sys.executable, "-m", "benchmarks.stress", "--smoke", "--only", *SERVING, "--out", str(out)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    after = stress.RELIABILITY_MD.read_bytes() if stress.RELIABILITY_MD.exists() else None
    assert after == reliability, "a smoke run must leave RELIABILITY.md alone"
    figures = {name: json.loads((out / f"stress-{name}.json").read_text()) for name in SERVING
               if (out / f"stress-{name}.json").exists()}
    texts = {name: (out / f"stress-{name}.md").read_text() for name in figures}
    return done.returncode, done.stdout + done.stderr, figures, texts


@pytest.mark.slow
def test_smoke_run_meets_every_goal(smoke):
    status, output, figures, texts = smoke
    assert sorted(figures) == sorted(SERVING), output
    missed = [(name, g) for name in SERVING for g in figures[name]["goals"] if not g["met"]]
    assert not missed and status == 0, output
    for name in SERVING:
        assert figures[name]["smoke"] is True and "| goal | figure | met |" in texts[name]


@pytest.mark.slow
def test_fuzz_sends_every_category_and_gets_no_5xx(smoke):
    fuzz = smoke[2]["fuzz"]
    assert fuzz["inputs"] == 300
    assert all(sum(statuses.values()) >= 20 for statuses in fuzz["by_category"].values())
    assert not [s for s in fuzz["by_status"] if s.isdigit() and int(s) >= 500] and fuzz["responses_5xx"] == 0
    # most malformed input is refused with a 4xx; the rest still decodes (a flipped bit in pixel data) or is
    # dropped by the HTTP server before the app sees it
    assert sum(n for s, n in fuzz["by_status"].items() if s.startswith("4")) > 0.8 * fuzz["inputs"]
    assert fuzz["worker_pid"]["before"] == fuzz["worker_pid"]["after"]
    assert fuzz["server_pids"]["before"] == fuzz["server_pids"]["after"] and fuzz["server_log_errors"] == 0
    assert fuzz["good_request"]["before"] and fuzz["good_request"]["after"]


@pytest.mark.slow
def test_soak_has_no_error_and_no_memory_growth(smoke):
    soak = smoke[2]["soak"]
    assert soak["load"]["requests"] > 0 and soak["load"]["failed"] == 0
    assert 0 < soak["load"]["p50_ms"] <= soak["load"]["p99_ms"]
    assert len(soak["rss_samples"]) >= 5 and all(s["rss_mb"] > 10 for s in soak["rss_samples"])
    assert soak["rss_growth_mb"] <= 20
    assert soak["worker_pid"]["before"] == soak["worker_pid"]["after"] and soak["good_request_after"]


@pytest.mark.slow
def test_swaps_refuse_every_broken_file_and_serve_every_good_one(smoke):
    swaps = smoke[2]["swaps"]
    rows = swaps["replacements"]
    assert len(rows) == 5 and swaps["load"]["failed"] == 0 and swaps["load"]["requests"] > 0
    broken = [row for row in rows if not row["good"]]
    assert [row["kind"].split()[0] for row in broken] == ["truncated", "half"]
    assert all(row["outcome"] == "refused, previous kept" and row["ok"] for row in broken)
    assert all(row["outcome"] == "served" and row["ok"] for row in rows if row["good"])
    assert rows[-1]["kind"].startswith("good, the rest of the half-written file")


def test_help_names_the_scenarios(capsys):
    with pytest.raises(SystemExit) as exit_:
        stress.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in stress.SCENARIOS) and "--smoke" in text and "--only" in text


def test_an_unknown_scenario_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        stress.main(["--only", "nonsense"])
    assert exit_.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_a_scenario_that_cannot_be_imported_is_a_clear_error_before_anything_runs(monkeypatch, capsys):
    real_import = importlib.import_module
    ran = []

    def import_module(name, *args):
        if name == "benchmarks.stress.soak":
            raise ModuleNotFoundError("No module named 'benchmarks.stress.soak'")
        module = real_import(name, *args)
        if name == "benchmarks.stress.fuzz":
            monkeypatch.setattr(module, "run", lambda smoke: ran.append(smoke))
        return module

    monkeypatch.setattr(importlib, "import_module", import_module)
    assert stress.main(["--smoke", "--only", "fuzz", "soak"]) == 2
    err = capsys.readouterr().err
    assert "scenario 'soak' cannot be imported (benchmarks/stress/soak.py): ModuleNotFoundError" in err
    assert ran == []  # fuzz, listed first, never started
