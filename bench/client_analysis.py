"""What the client benchmark reports, computed from the emulator's request log (pure).

The emulator counts a request in its window when the request *arrives*, so the achieved
rate is measured on arrival times, in windows of the emulator's length laid end to end from
the first arrival. Only complete windows count (a window cut off by the end of the run would
understate the rate). The busiest rolling window is reported too: it must never exceed the
limit, or the emulator would have answered 429.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds, any origin
    cost: int  # units counted against the window (a batch counts its items)
    status: int | None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation); `values` need not be sorted."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def window_counts(arrivals: Sequence[Arrival], window: float) -> list[int]:
    """Units admitted in each complete window [t0 + kW, t0 + (k+1)W) before the last arrival."""
    admitted = sorted((a for a in arrivals if a.status != 429), key=lambda a: a.at)
    if not admitted:
        return []
    start, end = admitted[0].at, admitted[-1].at
    counts: list[int] = []
    k = 0
    while start + (k + 1) * window <= end:
        low, high = start + k * window, start + (k + 1) * window
        counts.append(sum(a.cost for a in admitted if low <= a.at < high))
        k += 1
    return counts


def busiest_rolling_window(arrivals: Sequence[Arrival], window: float) -> int:
    """The most units admitted in any window [t, t + W) that starts at an arrival."""
    admitted = sorted((a for a in arrivals if a.status != 429), key=lambda a: a.at)
    times = [a.at for a in admitted]
    costs = [0]
    for a in admitted:
        costs.append(costs[-1] + a.cost)
    best = 0
    for i, at in enumerate(times):
        j = bisect.bisect_left(times, at + window)
        best = max(best, costs[j] - costs[i])
    return best


def summarise(arrivals: Sequence[Arrival], *, window: float, limit: int) -> dict[str, Any]:
    counts = window_counts(arrivals, window)
    mean = statistics.fmean(counts) if counts else None
    return {
        "requests_seen_by_emulator": len(arrivals),
        "throttled_429": sum(1 for a in arrivals if a.status == 429),
        "server_errors_5xx": sum(1 for a in arrivals if a.status is not None and a.status >= 500),
        "complete_windows": len(counts),
        "requests_per_complete_window": counts,
        "mean_requests_per_window": mean,
        "fraction_of_limit": mean / limit if mean is not None else None,
        "busiest_rolling_window": busiest_rolling_window(arrivals, window),
    }
