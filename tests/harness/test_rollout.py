"""The rollout's reading of HAProxy's log, without containers: which logged requests failed (client aborts
included), which were replayed on another replica and which retried on the same one, which reached a server marked
DOWN; the load's answers by model; podman's times (the scenarios themselves run in tests/deploy/test_replicas.py)."""

from __future__ import annotations

import json

from cifar10_pipeline.deploy.replicas import haproxy
from cifar10_pipeline.deploy.replicas.haproxy import Request, Transition
from harness.rollout import (
    aborted_by_client,
    answers_by_model,
    closed_before_request,
    failed,
    podman_time,
    replayed_elsewhere,
    retried_same_server,
    routed_while_down,
)


def test_a_request_failed_when_it_got_a_5xx_or_nothing_or_half_an_answer_or_the_client_gave_it_up():
    assert failed(Request("replica-1", 503, 0, "SH", 0.0))
    assert failed(Request("<NOSRV>", -1, 3, "SC", 0.0))
    assert failed(Request("replica-1", -1, 0, "CD", 0.0))  # the client left mid-answer: counted, not excused
    assert failed(Request("replica-1", 200, 0, "CD", 0.0))  # the status was sent, the answer not finished
    assert aborted_by_client(Request("replica-1", 200, 0, "CD", 0.0))
    assert failed(Request("replica-2", 200, 0, "SD", 0.0))  # the replica died mid-answer after a 200 head
    assert not failed(Request("replica-1", 200, 1, "--", 0.0, redispatched=True))  # replayed and answered


def test_a_connection_closed_before_any_request_is_no_request():
    probe = Request("<NOSRV>", 400, 0, "CR", 0.0)  # wrk's address check when it starts
    assert closed_before_request(probe) and not aborted_by_client(probe) and not failed(probe)
    assert not closed_before_request(Request("replica-1", -1, 0, "CD", 0.0))


def test_replays_on_another_replica_are_told_from_retries_on_the_same_one(tmp_path):
    log = tmp_path / "haproxy.log"
    log.write_text(
        "2026-12-04T16:19:41.5+00:00 request server=replica-1 status=200 retries=+1 term=-- accepted=1.0\n"
        "2026-12-04T16:19:41.6+00:00 request server=replica-2 status=200 retries=+1 term=-- accepted=2.0\n"
        "2026-12-04T16:19:41.7+00:00 request server=replica-1 status=200 retries=2 term=-- accepted=3.0\n"
        "2026-12-04T16:19:41.8+00:00 request server=replica-1 status=200 retries=0 term=-- accepted=4.0\n")
    requests, _ = haproxy.read_log(log)
    assert [r.redispatched for r in requests] == [True, True, False, False]
    assert [r.retries for r in requests] == [1, 1, 2, 0]
    # replica-2 was killed: a redispatched request it still answered was not replayed elsewhere
    assert [replayed_elsewhere(r, "replica-2") for r in requests] == [True, False, False, False]
    assert [retried_same_server(r) for r in requests] == [False, False, True, False]


def test_requests_reaching_a_server_marked_down_are_counted():
    transitions = [Transition("replica-2", "DOWN", 4.0), Transition("replica-2", "UP", 6.0)]
    requests = [Request("replica-2", 200, 0, "--", t) for t in (3.9, 4.0, 5.9, 6.0)]
    requests.append(Request("replica-1", 200, 0, "--", 5.0))
    assert routed_while_down(requests, transitions, end=10.0) == 2


def test_answers_are_counted_by_the_model_they_name():
    def body(model_id: str) -> str:
        return json.dumps({"model_id": model_id, "predictions": [{"label": "cat", "model_id": model_id}]})

    bodies = [{"status": 200, "body": body("a" * 64), "count": 5}, {"status": 200, "body": body("b" * 64), "count": 3},
              {"status": 200, "body": body("c" * 64), "count": 2}, {"status": 200, "body": "not json", "count": 1},
              {"status": 503, "body": body("a" * 64), "count": 7}]  # failed: counted by the load, not here
    assert answers_by_model(bodies, {"a" * 64: "old", "b" * 64: "new"}) == {"old": 5, "new": 3, "other": 3}


def test_podman_times_read_to_the_microsecond():
    assert podman_time("2026-12-04T16:50:01.123456789Z") == podman_time("2026-12-04T16:50:01.123456+00:00")
    assert podman_time("2026-12-04T16:50:01.5-01:00") - podman_time("2026-12-04T16:50:01Z") == 3600.5
    assert podman_time("2026-12-04T16:50:01Z") == 1796403001.0
