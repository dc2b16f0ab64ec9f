"""The rollout's reading of HAProxy's log, without containers: which logged requests failed, and which reached a
server marked DOWN (the scenarios themselves run in tests/deploy/test_replicas.py)."""

from __future__ import annotations

from cifar10_pipeline.deploy.replicas.haproxy import Request, Transition
from harness.rollout import failed, routed_while_down


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
