"""A server's measured rounds add up (harness.load.Tally): requests, failures and the failures' kinds, which a
report's "failed" cell names."""

from __future__ import annotations

from harness.load import Tally, failed_cell


def round_result(requests: int, errors: dict[str, int]) -> dict:
    """One round's totals as wrk's script prints them (``failed``: every error, of any kind)."""
    return {"requests": requests, "seconds": 1.0, "failed": sum(errors.values()), "p50_ms": 1.0, "p99_ms": 2.0,
            "errors": errors}


def test_failures_add_up_by_kind_over_the_rounds():
    tally = Tally()
    tally.add(round_result(100, {"connect": 0, "read": 1, "write": 0, "status": 0, "timeout": 0}), 0.5)
    tally.add(round_result(50, {"connect": 0, "read": 2, "write": 0, "status": 0, "timeout": 1}), 0.5)
    summary = tally.summary()
    assert summary["failed"] == 4 and summary["requests"] == 146
    assert summary["errors"] == {"read": 3, "timeout": 1}  # the kinds that happened, and only those
    assert failed_cell(summary) == "4 (read 3, timeout 1)"


def test_a_round_without_failures_reads_as_a_bare_zero():
    tally = Tally()
    tally.add(round_result(10, {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}), 0.1)
    assert tally.summary()["errors"] == {} and failed_cell(tally.summary()) == "0"
