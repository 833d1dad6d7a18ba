"""The pusher benchmark's figures are computed, not guessed: check the joins and the counts."""

from __future__ import annotations

from typing import Any

from bench.pusher_analysis import (
    SentEvent,
    applied_writes,
    burst_figures,
    carried,
    duplicated_writes,
    latency_figures,
    lost_accounts,
)

REALM = "r1"


def entry(
    request_id: str | None,
    at: float,
    *,
    status: int = 200,
    operation: str = "customer.write",
    took: float = 0.08,
    carries: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A request log entry; `carries` (customer Id, phone) makes its write body."""
    body = None
    if carries is not None:
        body = {"Id": carries[0], "SyncToken": "3", "PrimaryPhone": {"FreeFormNumber": carries[1]}}
    return {
        "realm_id": REALM,
        "request_id": request_id,
        "operation": operation,
        "status": status,
        "started_at": at,
        "finished_at": at + took,
        "cost": 1,
        "write_body": body,
    }


def event(customer_id: str, phone: str, at: float = 0.0) -> SentEvent:
    return SentEvent(REALM, customer_id, phone, at)


def test_a_logged_write_carries_the_customer_and_phone_of_its_body() -> None:
    assert carried(entry("q1", 1.0, carries=("58", "555"))) == ("58", "555")
    assert carried({**entry("q2", 1.0), "write_body": {"DisplayName": "New"}}) == (None, None)
    assert carried(entry(None, 1.0, operation="query")) == (None, None)


def test_applied_writes_are_the_200s_that_are_not_replays_joined_to_what_they_carried() -> None:
    log = [
        entry("q1", 1.0, carries=("c1", "p1")),
        entry("q2", 1.1, status=429, carries=("c1", "p2")),
        entry("q1", 1.2, operation="customer.write (replayed)", carries=("c1", "p1")),
        entry(None, 1.3, operation="query"),
    ]
    writes = applied_writes(log)
    assert [(w.request_id, w.customer_id, w.phone) for w in writes] == [("q1", "c1", "p1")]


def test_superseded_events_are_not_effective_changes_and_every_call_counts() -> None:
    # c1 got three events; the pusher wrote the first and the last (the middle one was
    # superseded while it waited). One 429 and one query are calls too.
    events = [event("c1", "p1"), event("c1", "p2"), event("c1", "p3"), event("c2", "p4")]
    log = [
        entry("q1", 0.0, carries=("c1", "p1")),
        entry("q2", 0.1, status=429, carries=("c1", "p3")),
        entry("q2", 0.2, carries=("c1", "p3")),
        entry("q3", 0.3, carries=("c2", "p4")),
        entry(None, 0.4, operation="query"),
    ]
    final = {(REALM, "c1"): "p3", (REALM, "c2"): "p4"}
    figures = burst_figures(events, log, final, window=10.0, limit=2)
    assert figures["effective_changes"] == 3
    assert figures["superseded_events"] == 1
    assert figures["calls"] == 5
    assert figures["calls_per_event"] == 1.25
    assert figures["calls_per_effective_change"] == round(5 / 3, 4)
    assert figures["throttled_429"] == 1
    assert figures["lost_writes"] == 0
    assert figures["duplicated_writes"] == 0


def test_an_account_whose_last_state_never_arrived_is_lost() -> None:
    events = [event("c1", "p1"), event("c1", "p2"), event("c2", "p3")]
    final = {(REALM, "c1"): "p1", (REALM, "c2"): "p3"}
    assert lost_accounts(events, final) == [(REALM, "c1")]


def test_one_requestid_or_one_value_written_twice_is_a_duplicate() -> None:
    log = [
        entry("q1", 0.0, carries=("c1", "p1")),
        entry("q1", 1.0, carries=("c1", "p1")),
        entry("q2", 2.0, carries=("c2", "p2")),
        entry("q3", 3.0, carries=("c2", "p2")),
    ]
    # q1 applied a second time, and p2 written to c2 again by another request
    assert duplicated_writes(applied_writes(log)) == 2


def test_latency_runs_from_occurred_at_to_the_write_that_carried_the_value() -> None:
    events = [event("c1", "p1", at=10.0), event("c2", "p2", at=10.5), event("c3", "p3", at=11.0)]
    log = [
        entry("q1", 10.02, took=0.08, carries=("c1", "p1")),
        entry("q2", 10.9, took=0.1, carries=("c2", "p2")),
    ]
    figures = latency_figures(events, log)
    assert figures["events_written"] == 2  # p3 never reached QuickBooks
    finished = figures["to_write_finished_ms"]
    assert finished["p50"] == 100.0
    assert finished["max"] == 500.0
    assert figures["to_write_started_ms"]["p50"] == 20.0
