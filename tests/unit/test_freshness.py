"""When CDC reads a realm (issue 15: reads are metered, webhooks drive freshness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qbsync.sync.freshness import RECONCILE_LOOKBACK, covered, due_for_poll, since_for_round

NOON = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)


def test_a_change_before_the_mark_was_read_by_that_round() -> None:
    assert covered(NOON - timedelta(seconds=1), NOON)
    assert not covered(NOON, NOON)
    assert not covered(NOON + timedelta(seconds=1), NOON)
    assert not covered(NOON, None)  # never read: the first round reads the last day


def test_a_stamp_in_whole_seconds_is_covered_only_by_a_mark_past_its_second() -> None:
    # 12:00:00 may be 12:00:00.999: a round that ended at 12:00:00.500 may have missed it.
    assert not covered(NOON, NOON + timedelta(milliseconds=500))
    assert covered(NOON, NOON + timedelta(seconds=1))
    # a millisecond stamp (CloudEvents) is exact
    stamped = NOON + timedelta(milliseconds=250)
    assert covered(stamped, NOON + timedelta(milliseconds=500))
    assert not covered(stamped, NOON + timedelta(milliseconds=250))


def test_a_realm_is_polled_only_once_its_mark_is_older_than_the_interval() -> None:
    assert not due_for_poll(NOON - HALF_HOUR + timedelta(seconds=1), NOON, HALF_HOUR)
    assert due_for_poll(NOON - HALF_HOUR, NOON, HALF_HOUR)
    assert due_for_poll(None, NOON, HALF_HOUR)


def test_the_first_round_of_a_day_looks_a_day_further_back() -> None:
    before_midnight = datetime(2026, 12, 6, 23, 45, tzinfo=UTC)
    after_midnight = datetime(2026, 12, 7, 0, 15, tzinfo=UTC)
    assert since_for_round(before_midnight, after_midnight) == before_midnight - RECONCILE_LOOKBACK
    assert since_for_round(after_midnight, after_midnight + HALF_HOUR) == after_midnight


def test_an_idle_realm_costs_at_most_48_reads_a_day() -> None:
    """The safety net's price: a round whenever the mark is 30 minutes old, checked every
    minute; the daily reconciliation is one of those rounds, not an extra one."""
    mark, now, reads = NOON, NOON, 0
    while now < NOON + timedelta(days=1):
        now += timedelta(minutes=1)
        if due_for_poll(mark, now, HALF_HOUR):
            since_for_round(mark, now)
            mark, reads = now, reads + 1
    assert reads == 48
