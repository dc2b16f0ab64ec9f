"""Fuzz: the smoke run sends every category of malformed request and gets no 5xx and no worker restart; the
generator probes the service's own limits, read from its configuration, and the same seed gives the same bytes."""

from __future__ import annotations

import dataclasses

import pytest

from cifar10_pipeline.inference.config import ServiceConfig
from reliability.fuzz import may_close
from reliability.fuzz_inputs import Request, categories, requests


@pytest.mark.slow
def test_fuzz_sends_every_category_and_gets_no_5xx(serving_smoke):
    fuzz = serving_smoke.figures["fuzz"]
    assert fuzz["inputs"] == 300
    assert all(sum(statuses.values()) >= 20 for statuses in fuzz["by_category"].values())
    assert not [s for s in fuzz["by_status"] if s.isdigit() and int(s) >= 500] and fuzz["responses_5xx"] == 0
    # most malformed input is refused with a 4xx; the rest still decodes (a flipped bit in pixel data) or is
    # dropped by the HTTP server before the app sees it
    assert sum(n for s, n in fuzz["by_status"].items() if s.startswith("4")) > 0.8 * fuzz["inputs"]
    assert fuzz["worker_pid"]["before"] == fuzz["worker_pid"]["after"]
    assert fuzz["server_pids"]["before"] == fuzz["server_pids"]["after"] and fuzz["server_log_errors"] == 0
    assert fuzz["good_request"]["before"] and fuzz["good_request"]["after"]
    # no request unanswered but those a server may refuse by closing; no timeout
    assert fuzz["closed_without_answer"]["not_allowed"] == 0 and fuzz["timeouts"] == 0
    assert fuzz["closed_without_answer"]["allowed"] == fuzz["by_status"].get("closed, no answer", 0)
    goals = {g["goal"].split(" (")[0]: g["met"] for g in fuzz["goals"]}
    assert goals["0 connections closed without an answer, but for requests with both Content-Length and "
                 "Transfer-Encoding"] and goals["0 tracebacks or unhandled errors in the server's log"]


def test_only_a_request_with_both_content_length_and_transfer_encoding_may_be_closed_unanswered():
    def request(*headers: tuple[str, str]) -> Request:
        return Request("Content-Length lies (/predict)", "/predict", headers, b"")

    assert may_close(request(("Content-Length", "5"), ("Transfer-Encoding", "chunked")))
    assert may_close(request(("transfer-encoding", "chunked"), ("content-length", "abc")))  # names are any case
    assert not may_close(request(("Transfer-Encoding", "chunked")))
    assert not may_close(request(("Content-Length", "5"), ("Content-Length", "6")))
    assert not may_close(request(("Content-Type", "image/png")))


def declared_lengths(config: ServiceConfig, count: int) -> set[int]:
    return {int(value) for request in requests(count, 13, config) for name, value in request.headers
            if name == "Content-Length" and value.isdigit()}


def test_the_limits_probed_are_the_services_own():
    default = ServiceConfig()
    assert default.max_upload_bytes + 1 in declared_lengths(default, 500)  # just over the upload limit
    smaller = dataclasses.replace(default, max_upload_bytes=1000, max_files=3, model_name="other")
    assert 1001 in declared_lengths(smaller, 500) and default.max_upload_bytes + 1 not in declared_lengths(smaller, 500)
    paths = {request.path for request in requests(len(categories()), 13, smaller)}
    assert paths == {"/predict", "/v2/models/other/infer"}


def test_the_same_seed_gives_the_same_requests():
    def made(seed: int) -> list[tuple[str, bytes]]:
        # gzip bodies carry no timestamp to compare: the generator writes them without one
        return [(request.category, request.raw()) for request in requests(200, seed, ServiceConfig())]

    assert made(13) == made(13) and made(13) != made(14)
    assert {category for category, _ in made(13)} == set(categories())
