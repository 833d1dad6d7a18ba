"""What the pusher benchmark reports, computed from what QuickBooks saw (pure).

Inputs: the events the benchmark sent (each sets a phone number no other event uses, so a
value in QuickBooks names the event it came from), the emulator's request log (arrival,
finish, answer and, for writes, the body: which customer and phone each write carried)
and the customers' final state.

Definitions:
- a *call* is any QuickBooks API request of the realm the emulator saw: writes, reads,
  queries, throttled (429) or failed ones, replays of a requestid;
- an *applied write* is a customer write QuickBooks carried out (200, not a replay);
- an *effective change* is an event whose state QuickBooks received: its phone value was
  written to its account's customer. An event whose state a later event of the same account
  superseded before the pusher got to it (the pusher writes only the latest state it has)
  is not an effective change, and its value is never written: that is coalescing, not loss;
- a *lost* write: an account whose final state in QuickBooks differs from its last event;
- a *duplicated* write: two applied writes with one requestid, or of one value to one
  customer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from bench.client_analysis import Arrival, percentile, summarise

WRITE = "customer.write"
LATENCY_SLICE_SECONDS = 10


@dataclass(frozen=True)
class SentEvent:
    realm_id: str
    customer_id: str  # the customer the account is linked to
    phone: str  # unique per event
    occurred_at: float  # epoch seconds, as the event's occurred_at says


@dataclass(frozen=True)
class AppliedWrite:
    realm_id: str
    request_id: str | None
    customer_id: str | None  # None for a create
    phone: str | None
    started_at: float
    finished_at: float


def carried(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The customer Id and phone number a logged write's body carried (pure)."""
    body = entry.get("write_body")
    if not isinstance(body, dict):
        return None, None
    customer_id = body.get("Id")
    phone = (body.get("PrimaryPhone") or {}).get("FreeFormNumber")
    return (
        str(customer_id) if customer_id is not None else None,
        phone if isinstance(phone, str) else None,
    )


def applied_writes(log: Iterable[Mapping[str, Any]]) -> list[AppliedWrite]:
    """The customer writes QuickBooks carried out, with what each one carried."""
    writes: list[AppliedWrite] = []
    for entry in log:
        if entry["operation"] != WRITE or entry["status"] != 200:
            continue
        customer_id, phone = carried(entry)
        writes.append(
            AppliedWrite(
                realm_id=str(entry["realm_id"]),
                request_id=entry["request_id"],
                customer_id=customer_id,
                phone=phone,
                started_at=float(entry["started_at"]),
                finished_at=float(entry["finished_at"]),
            )
        )
    return writes


def last_values(events: Iterable[SentEvent]) -> dict[tuple[str, str], str]:
    """(realm, customer) -> the phone of the last event sent for it (events in send order)."""
    last: dict[tuple[str, str], str] = {}
    for event in events:
        last[(event.realm_id, event.customer_id)] = event.phone
    return last


def lost_accounts(
    events: Iterable[SentEvent], final_phones: Mapping[tuple[str, str], str | None]
) -> list[tuple[str, str]]:
    """Customers whose final phone in QuickBooks is not their account's last event's."""
    return sorted(
        key for key, phone in last_values(events).items() if final_phones.get(key) != phone
    )


def duplicated_writes(writes: Sequence[AppliedWrite]) -> int:
    """Applied writes that repeat an earlier one's requestid or its value for its customer
    (each such write counted once)."""
    seen_ids: set[str] = set()
    seen_values: set[tuple[str, str | None, str]] = set()
    repeated = 0
    for write in writes:
        value = (write.realm_id, write.customer_id, write.phone) if write.phone else None
        if (write.request_id is not None and write.request_id in seen_ids) or (
            value is not None and value in seen_values
        ):
            repeated += 1
        if write.request_id is not None:
            seen_ids.add(write.request_id)
        if value is not None:
            seen_values.add(value)
    return repeated


def realm_burst(
    realm_id: str,
    events: Sequence[SentEvent],
    log: Sequence[Mapping[str, Any]],
    writes: Sequence[AppliedWrite],
    *,
    window: float,
    limit: int,
) -> dict[str, Any]:
    """One realm's figures for the burst."""
    sent = {(e.customer_id, e.phone) for e in events}
    written = {(w.customer_id, w.phone) for w in writes}
    effective = len(sent & written)
    calls = len(log)
    statuses = Counter(str(entry["status"]) for entry in log)
    arrivals = [Arrival(at=w.started_at, cost=1, status=200) for w in writes]
    every_call = [Arrival(at=e["started_at"], cost=e["cost"], status=e["status"]) for e in log]
    of_writes = summarise(arrivals, window=window, limit=limit)
    of_calls = summarise(every_call, window=window, limit=limit)
    return {
        "realm_id": realm_id,
        "events": len(events),
        "calls": calls,
        "calls_by_status": dict(sorted(statuses.items())),
        "calls_by_operation": dict(sorted(Counter(e["operation"] for e in log).items())),
        "applied_writes": len(writes),
        "effective_changes": effective,
        "superseded_events": len(events) - effective,
        "writes_of_no_event": len(written - sent),
        "calls_per_event": _ratio(calls, len(events)),
        "calls_per_effective_change": _ratio(calls, effective),
        "writes_fraction_of_limit": of_writes["sustained_fraction_of_limit"],
        "writes_per_complete_window": of_writes["requests_per_complete_window"],
        "calls_fraction_of_limit": of_calls["sustained_fraction_of_limit"],
        "busiest_rolling_window": of_calls["busiest_rolling_window"],
        "first_write_at": min((w.started_at for w in writes), default=None),
        "last_write_at": max((w.finished_at for w in writes), default=None),
    }


def burst_figures(
    events: Sequence[SentEvent],
    log: Sequence[Mapping[str, Any]],
    final_phones: Mapping[tuple[str, str], str | None],
    *,
    window: float,
    limit: int,
) -> dict[str, Any]:
    writes = applied_writes(log)
    events_of: dict[str, list[SentEvent]] = defaultdict(list)
    for event in events:
        events_of[event.realm_id].append(event)
    realms = [
        realm_burst(
            realm_id,
            realm_events,
            [e for e in log if e["realm_id"] == realm_id],
            [w for w in writes if w.realm_id == realm_id],
            window=window,
            limit=limit,
        )
        for realm_id, realm_events in sorted(events_of.items())
    ]
    fractions = [r["writes_fraction_of_limit"] for r in realms]
    measured = [f for f in fractions if f is not None]
    calls = sum(r["calls"] for r in realms)
    effective = sum(r["effective_changes"] for r in realms)
    lost = lost_accounts(events, final_phones)
    starts = [r["first_write_at"] for r in realms if r["first_write_at"] is not None]
    ends = [r["last_write_at"] for r in realms if r["last_write_at"] is not None]
    return {
        "events": len(events),
        "calls": calls,
        "applied_writes": len(writes),
        "effective_changes": effective,
        "superseded_events": len(events) - effective,
        "calls_per_event": _ratio(calls, len(events)),
        "calls_per_effective_change": _ratio(calls, effective),
        "writes_fraction_of_limit_mean": round(fmean(measured), 4) if measured else None,
        "writes_fraction_of_limit_min": round(min(measured), 4) if measured else None,
        "realms_without_a_fraction": len(fractions) - len(measured),
        "throttled_429": sum(int(r["calls_by_status"].get("429", 0)) for r in realms),
        "lost_writes": len(lost),
        "lost_examples": [list(key) for key in lost[:5]],
        "duplicated_writes": duplicated_writes(writes),
        "writes_of_no_event": sum(r["writes_of_no_event"] for r in realms),
        "writing_seconds": round(max(ends) - min(starts), 2) if starts and ends else None,
        "realms": realms,
    }


def latency_figures(
    events: Sequence[SentEvent],
    log: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """From each event's occurred_at to the QuickBooks write that carried its value: to the
    write's arrival (started_at) and to its completion (finished_at)."""
    writes = applied_writes(log)
    first_write: dict[tuple[str | None, str | None], AppliedWrite] = {}
    for write in sorted(writes, key=lambda w: w.started_at):
        first_write.setdefault((write.customer_id, write.phone), write)
    to_start: list[float] = []
    to_finish: list[float] = []
    by_slice: dict[int, list[float]] = defaultdict(list)
    began = min((e.occurred_at for e in events), default=0.0)
    for event in events:
        carrier = first_write.get((event.customer_id, event.phone))
        if carrier is not None:
            to_start.append(carrier.started_at - event.occurred_at)
            to_finish.append(carrier.finished_at - event.occurred_at)
            slice_index = int((event.occurred_at - began) // LATENCY_SLICE_SECONDS)
            by_slice[slice_index].append(carrier.finished_at - event.occurred_at)
    return {
        "events": len(events),
        "events_written": len(to_finish),
        "calls": len(log),
        "throttled_429": sum(1 for e in log if e["status"] == 429),
        "duplicated_writes": duplicated_writes(writes),
        "to_write_finished_ms": milliseconds(to_finish),
        "to_write_started_ms": milliseconds(to_start),
        # When in the phase the slow ones were: p99 of each successive slice of events.
        f"p99_ms_per_{LATENCY_SLICE_SECONDS}s": [
            round(percentile(by_slice[k], 0.99) * 1000, 1) for k in sorted(by_slice)
        ],
    }


def milliseconds(seconds: Sequence[float]) -> dict[str, float] | None:
    if not seconds:
        return None
    return {
        "p50": round(percentile(seconds, 0.50) * 1000, 1),
        "p90": round(percentile(seconds, 0.90) * 1000, 1),
        "p99": round(percentile(seconds, 0.99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None
