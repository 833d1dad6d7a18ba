"""Which of one account's events make earlier ones redundant (each carries the account's
whole state): consecutive updates collapse into the last; created and archived events are
always applied, and an update never stands for them."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from qbsync.sync.account_events import superseded, supersedes
from schemas import AccountEvent

TYPES = ("account.created", "account.updated", "account.archived")


def event(event_id: str, type_: str) -> AccountEvent:
    return AccountEvent.model_validate(
        {
            "event_id": event_id,
            "type": type_,
            "occurred_at": datetime(2026, 11, 25, tzinfo=UTC),
            "firm_id": "firm-1",
            "account": {"id": "acct-1", "name": "Acme"},
        }
    )


@pytest.mark.parametrize(("earlier", "later"), list(product(TYPES, TYPES)))
def test_only_an_update_supersedes_and_only_an_update(earlier: str, later: str) -> None:
    expected = earlier == later == "account.updated"
    assert supersedes(event("2", later), event("1", earlier)) is expected


def test_consecutive_updates_collapse_into_the_last() -> None:
    events = [event(str(n), "account.updated") for n in range(1, 5)]
    assert [(e.event_id, ids) for e, ids in superseded(events)] == [("4", ["1", "2", "3"])]


def test_created_and_archived_split_the_runs_of_updates() -> None:
    types = ["created", "updated", "updated", "archived", "updated", "created", "updated"]
    events = [event(str(n), f"account.{t}") for n, t in enumerate(types, start=1)]
    assert [(e.event_id, ids) for e, ids in superseded(events)] == [
        ("1", []),
        ("3", ["2"]),
        ("4", []),
        ("5", []),
        ("6", []),
        ("7", []),
    ]


def test_no_events_no_plan() -> None:
    assert superseded([]) == []
