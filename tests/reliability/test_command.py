"""``python -m reliability``: the serving scenarios' smoke run holds the same goals as the full run; a missed goal
exits 1 once every scenario's figures are written; the command line's errors are clear."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from reliability import __main__ as cli
from tests.reliability.conftest import SERVING


@pytest.mark.slow
def test_smoke_run_meets_every_goal(serving_smoke):
    assert sorted(serving_smoke.figures) == sorted(SERVING), serving_smoke.output
    missed = [(name, g) for name in SERVING for g in serving_smoke.figures[name]["goals"] if not g["met"]]
    assert not missed and serving_smoke.status == 0, serving_smoke.output
    for name in SERVING:
        assert serving_smoke.figures[name]["smoke"] is True and "| goal | figure | met |" in serving_smoke.texts[name]


def test_every_scenario_is_a_module_with_its_name_a_run_and_a_table():
    assert list(cli.SCENARIOS) == ["fuzz", "soak", "swaps", "kill_training", "kill_tuning"]
    for name, module in cli.SCENARIOS.items():
        assert module.NAME == name and module.__name__ == f"reliability.{name}"
        assert callable(module.run) and callable(module.markdown)


def test_help_names_the_scenarios(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in cli.SCENARIOS) and "--smoke" in text and "--only" in text
    assert text.startswith("usage: python -m reliability")


def test_an_unknown_scenario_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--only", "nonsense"])
    assert exit_.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


def scenario(name: str, met: bool) -> SimpleNamespace:
    """A stand-in scenario whose one goal is met or not."""
    return SimpleNamespace(NAME=name, run=lambda smoke: {"goals": [{"goal": f"{name} holds", "met": met,
                                                                     "figure": "7"}]},
                           markdown=lambda figures: f"# {name}\n")


def test_a_missed_goal_exits_1_after_every_scenario_wrote_its_figures(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "SCENARIOS", {"first": scenario("first", False), "second": scenario("second", True)})
    assert cli.main(["--smoke", "--out", str(tmp_path)]) == 1
    assert "goals missed:\n  first: first holds (7)" in capsys.readouterr().err
    for name in ("first", "second"):  # the scenario after the miss ran too
        figures = json.loads((tmp_path / f"stress-{name}.json").read_text())
        assert figures["scenario"] == name and figures["smoke"] is True and figures["wall_s"] >= 0
        assert (tmp_path / f"stress-{name}.md").read_text().startswith(f"# {name}\n\nMachine: ")
    monkeypatch.setattr(cli, "SCENARIOS", {"second": scenario("second", True)})
    assert cli.main(["--smoke", "--out", str(tmp_path)]) == 0
