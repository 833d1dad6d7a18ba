"""Lag arithmetic, consumption rates and catch-up estimates (pure)."""

from __future__ import annotations

from rich.console import Console

from qbsync.cli.lag import format_catch_up, format_duration, lag_table
from qbsync.kafka.lag import (
    OffsetsSnapshot,
    PartitionOffsets,
    RateTracker,
    build_report,
    catch_up_seconds,
    dead_letter_backlogs,
    partition_lag,
)

EVENTS = "p.liscio.account-events"


def snapshot(
    at: float,
    committed: dict[str, dict[tuple[str, int], int]],
    ends: dict[tuple[str, int], int],
    starts: dict[tuple[str, int], int] | None = None,
) -> OffsetsSnapshot:
    starts = starts or {}
    return OffsetsSnapshot(
        taken_at=at,
        committed=committed,
        partitions={key: PartitionOffsets(starts.get(key, 0), end) for key, end in ends.items()},
    )


def test_lag_is_end_minus_committed_and_counts_from_the_oldest_message_without_a_commit() -> None:
    assert partition_lag(7, PartitionOffsets(0, 10)) == 3
    assert partition_lag(None, PartitionOffsets(4, 10)) == 6
    # Retention deleted offsets 0-4: the consumer will start at 5, not at its old commit.
    assert partition_lag(2, PartitionOffsets(5, 10)) == 5
    assert partition_lag(10, PartitionOffsets(0, 10)) == 0
    assert partition_lag(12, PartitionOffsets(0, 10)) == 0


def test_report_covers_every_partition_of_every_topic_the_group_committed_on() -> None:
    snap = snapshot(
        100.0,
        {"p.qbsync-matcher": {(EVENTS, 0): 5}},
        {(EVENTS, 0): 8, (EVENTS, 1): 3, ("p.qbo.customers", 0): 50},
    )
    report = build_report(snap)
    (group,) = report.groups
    assert group.group == "p.qbsync-matcher"
    rows = [
        (r.topic, r.partition, r.committed_offset, r.end_offset, r.lag) for r in group.partitions
    ]
    # Partition 1 has no commit (nothing consumed yet), qbo.customers is not the group's.
    assert rows == [(EVENTS, 0, 5, 8, 3), (EVENTS, 1, None, 3, 3)]
    assert group.lag == 6
    assert group.lag_by_topic() == {EVENTS: 6}


def test_a_group_whose_topics_are_gone_is_left_out() -> None:
    snap = snapshot(1.0, {"p.old": {("p.deleted", 0): 3}}, {(EVENTS, 0): 1})
    assert build_report(snap).groups == ()


def test_rate_and_catch_up_come_from_how_fast_commits_advance() -> None:
    rates = RateTracker(window_seconds=60)
    ends = {(EVENTS, 0): 1000}
    rates.add(snapshot(100.0, {"g": {(EVENTS, 0): 100}}, ends))
    rates.add(snapshot(110.0, {"g": {(EVENTS, 0): 300}}, ends))
    report = build_report(snapshot(110.0, {"g": {(EVENTS, 0): 300}}, ends), rates)
    (row,) = report.groups[0].partitions
    assert row.consumption_rate == 20.0
    assert row.lag == 700
    assert row.catch_up_seconds == 35.0
    assert report.rate_window_seconds == 10.0
    assert report.to_json()["groups"][0]["catch_up_seconds"] == 35.0


def test_catch_up_is_unknown_without_a_rate_and_zero_without_lag() -> None:
    assert catch_up_seconds(0, None) == 0.0
    assert catch_up_seconds(10, None) is None
    assert catch_up_seconds(10, 0.0) is None
    assert catch_up_seconds(10, 2.0) == 5.0


def test_rate_window_forgets_old_samples_but_keeps_it_covered() -> None:
    rates = RateTracker(window_seconds=10)
    key = (EVENTS, 0)
    for at, offset in ((0.0, 0), (5.0, 1000), (20.0, 1010), (25.0, 1020)):
        rates.add(snapshot(at, {"g": {key: offset}}, {key: 2000}))
    # The window at t=25 starts at 15; the newest sample at or before that (t=5) is kept so
    # the window is covered, the burst of 1000 between t=0 and t=5 is forgotten.
    assert rates.rate("g", key) == 1.0
    assert rates.span_seconds == 20.0


def test_a_single_sample_has_no_rate_and_a_reset_is_not_negative() -> None:
    rates = RateTracker()
    key = (EVENTS, 0)
    rates.add(snapshot(0.0, {"g": {key: 50}}, {key: 60}))
    assert rates.rate("g", key) is None
    rates.add(snapshot(1.0, {"g": {key: 10}}, {key: 60}))
    assert rates.rate("g", key) == 0.0


def test_dead_letter_backlog_counts_held_and_not_yet_redriven_messages() -> None:
    dlq = ("p.liscio.account-events.dlq", 0)
    snap = snapshot(
        1.0,
        {"p.qbsync-dlq-redrive-liscio.account-events": {dlq: 4}},
        {dlq: 6, (EVENTS, 0): 9, ("p.qbo.changes.dlq", 0): 2},
        starts={dlq: 1},
    )
    backlogs = dead_letter_backlogs(
        snap, {"p.liscio.account-events.dlq": "p.qbsync-dlq-redrive-liscio.account-events"}
    )
    by_topic = {b.topic: (b.messages, b.pending) for b in backlogs}
    assert by_topic == {"p.liscio.account-events.dlq": (5, 2), "p.qbo.changes.dlq": (2, 2)}


def test_durations_and_catch_up_read_like_a_person_would_write_them() -> None:
    assert format_duration(42.4) == "42s"
    assert format_duration(200) == "3m 20s"
    assert format_duration(7500) == "2h 05m"
    assert format_catch_up(0, None, 0.0) == "-"
    assert format_catch_up(5, None, None) == "?"
    assert format_catch_up(5, 0.0, None) == "stalled"


def test_the_table_shows_groups_and_partitions_without_the_prefix() -> None:
    rates = RateTracker()
    key = (EVENTS, 3)
    rates.add(snapshot(0.0, {"p.qbsync-matcher": {key: 0}}, {key: 100}))
    last = snapshot(10.0, {"p.qbsync-matcher": {key: 40}}, {key: 100})
    rates.add(last)
    console = Console(record=True, width=100)
    console.print(lag_table(build_report(last, rates), prefix="p."))
    text = console.export_text()
    assert "qbsync-matcher" in text and "p.qbsync-matcher" not in text
    (row,) = [line for line in text.splitlines() if "liscio.account-events" in line]
    assert row.split() == ["liscio.account-events", "3", "40", "100", "60", "4.0", "15s"]
