"""The client benchmark's figures are computed, not guessed: check the arithmetic."""

from __future__ import annotations

import pytest

from bench.client_analysis import (
    Arrival,
    busiest_rolling_window,
    percentile,
    summarise,
    sustained_fraction,
    window_counts,
)


def arrivals(*times: float, status: int = 200) -> list[Arrival]:
    return [Arrival(at=t, cost=1, status=status) for t in times]


def test_only_complete_windows_from_the_first_arrival_count() -> None:
    log = arrivals(10.0, 10.5, 11.9, 12.0, 13.0, 14.5)
    # windows of 2 s from 10: [10,12) has 3, [12,14) has 2, [14,16) is cut off by the end
    assert window_counts(log, window=2.0) == [3, 2]


def test_throttled_requests_are_not_admitted_but_are_counted_as_429() -> None:
    log = arrivals(0.0, 0.1, 0.2) + arrivals(0.3, status=429) + arrivals(1.5)
    summary = summarise(log, window=1.0, limit=4)
    assert summary["throttled_429"] == 1
    assert summary["requests_per_complete_window"] == [3]
    assert summary["complete_windows_fraction_of_limit"] == 0.75


def test_batches_count_their_items() -> None:
    log = [Arrival(0.0, 30, 200), Arrival(0.5, 1, 200), Arrival(2.0, 1, 200)]
    assert window_counts(log, window=1.0) == [31, 0]
    assert busiest_rolling_window(log, window=1.0) == 31


def test_the_busiest_rolling_window_finds_a_burst_across_a_boundary() -> None:
    log = arrivals(0.0, 0.9, 1.0, 1.1, 1.8, 3.0)
    assert busiest_rolling_window(log, window=1.0) == 4  # 0.9, 1.0, 1.1, 1.8


def test_percentiles_use_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_the_sustained_rate_counts_whole_quotas_until_the_next_one_starts() -> None:
    # Limit 2 per 1 s window: quotas start at 0, 1.1 and 2.2 (each a round trip late).
    log = arrivals(0.0, 0.05, 1.1, 1.15, 2.2, 2.25)
    fraction = sustained_fraction(log, window=1.0, limit=2)
    assert fraction == pytest.approx(4 / 2.2 / 2)  # two quotas in 2.2 s
    assert sustained_fraction(arrivals(0.0, 0.1), window=1.0, limit=2) is None
