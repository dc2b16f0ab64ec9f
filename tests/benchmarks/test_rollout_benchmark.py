"""The rollout benchmark's judgement, without containers: which logged requests failed, which reached a server
marked DOWN, and goals shown as missed when a figure misses them (the scenarios run in tests/deploy)."""

from __future__ import annotations

import copy

from benchmarks.rollout import failed, markdown, routed_while_down, verdicts
from cifar10_pipeline.deploy.replicas.haproxy import Request, Transition

NEW, OLD = "n" * 64, "o" * 64
REPORT = {
    "smoke": True, "machine": "test machine", "haproxy": "2.6.12", "model": "tiny", "upload_bytes": 100,
    "load_average": 1.5,
    "rollout": {
        "replicas": 2, "concurrency": 4, "load_s": 20.0, "rollout_s": 6.0, "rollout_under_load": True,
        "requests": 1000, "failed": 0, "p50_ms": 4.0, "p99_ms": 40.0, "corrupt_refused": True,
        "steps": [
            {"file": "new", "replica": "replica-1", "model_id": NEW, "swapped": True, "refused": None, "seconds": 2.0},
            {"file": "corrupt", "replica": "replica-2", "model_id": OLD, "swapped": False, "seconds": 1.9,
             "refused": "/models/model.onnx breaks the model contract:\n  - onnxruntime cannot load it: INVALID"},
            {"file": "new", "replica": "replica-2", "model_id": NEW, "swapped": True, "refused": None, "seconds": 1.8},
        ],
        "new_model_id": NEW, "final_model_ids": {"replica-1": NEW, "replica-2": NEW}, "all_on_new_model": True,
        "requests_by_replica": {"replica-1": 500, "replica-2": 500}, "readiness_samples": 50,
        "not_ready_samples": {"replica-1": 0, "replica-2": 0}, "routed_to_down_replica": 0,
    },
    "kill": {
        "victim": "replica-2", "check": {"inter_ms": 1000, "fall": 2, "rise": 2, "timeout_ms": 1000},
        "detection_window_s": 3.0, "detected_after_s": 1.4, "requests": 500, "failed": 0,
        "balancer_failed_before_window": 0, "balancer_failed_after_window": 0, "replayed_on_another_replica": 7,
        "sent_to_victim_after_marked_down": 0,
    },
}


def test_a_request_failed_when_it_got_a_5xx_or_nothing_unless_the_client_left():
    assert failed(Request("replica-1", 503, 0, "SH", 0.0))
    assert failed(Request("<NOSRV>", -1, 3, "SC", 0.0))
    assert not failed(Request("replica-1", -1, 0, "CD", 0.0))  # wrk closed its connection at its time limit
    assert not failed(Request("replica-1", 200, 1, "--", 0.0))  # replayed on another replica and answered


def test_requests_reaching_a_server_marked_down_are_counted():
    transitions = [Transition("replica-2", "DOWN", 4.0), Transition("replica-2", "UP", 6.0)]
    requests = [Request("replica-2", 200, 0, "--", t) for t in (3.9, 4.0, 5.9, 6.0)]
    requests.append(Request("replica-1", 200, 0, "--", 5.0))
    assert routed_while_down(requests, transitions, end=10.0) == 2


def test_every_goal_is_met_on_good_figures_and_the_table_says_so():
    assert [met for *_, met in verdicts(REPORT)] == [True] * 6
    table = markdown(REPORT)
    assert "**no**" not in table and "requests by replica: replica-1 500, replica-2 500." in table
    assert "| replica-2 | corrupt | 1.9 s | no | onnxruntime cannot load it: INVALID |" in table


def test_a_missed_goal_is_shown_as_missed():
    for section, key, value, goal in [
        ("rollout", "failed", 3, "0 failed requests during the rollout"),
        ("rollout", "routed_to_down_replica", 1, "no request routed to a replica that is not ready"),
        ("kill", "detected_after_s", None, "killed replica drained within the detection window (3 s)"),
        ("kill", "balancer_failed_after_window", 2, "0 failed requests after the detection window"),
    ]:
        report = copy.deepcopy(REPORT)
        report[section][key] = value
        missed = [g for g, _, met in verdicts(report) if not met]
        assert missed == [goal]
        assert f"| {goal} |" in markdown(report) and "**no**" in markdown(report)
