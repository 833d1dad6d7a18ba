"""What the client benchmark reports, computed from the emulator's request log (pure).

The emulator counts a request in its window when the request *arrives*, so every rate here
is measured on arrival times:
- sustained rate: a client at the limit sends a window's quota, then waits for the window to
  roll; the time from the first arrival to the first arrival of the last quota (the one that
  starts after k full quotas) gives k quotas per that time, independent of where windows are
  laid; reported per window as a fraction of the limit (the headline figure);
- complete windows laid end to end from the first arrival, and their counts;
- the busiest rolling window, which must never exceed the limit (or the emulator would have
  answered 429).
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


def sustained_fraction(arrivals: Sequence[Arrival], window: float, limit: int) -> float | None:
    """Units per window, as a fraction of `limit`, from the first arrival to the first
    arrival after the last complete quota; None when the run is a single quota."""
    admitted = sorted((a for a in arrivals if a.status != 429), key=lambda a: a.at)
    total = sum(a.cost for a in admitted)
    quotas = (total - 1) // limit
    if quotas < 1:
        return None
    before = 0
    for arrival in admitted:
        if before >= quotas * limit:
            elapsed = arrival.at - admitted[0].at
            return before / (elapsed / window) / limit if elapsed > 0 else None
        before += arrival.cost
    return None


def summarise(arrivals: Sequence[Arrival], *, window: float, limit: int) -> dict[str, Any]:
    counts = window_counts(arrivals, window)
    mean = statistics.fmean(counts) if counts else None
    return {
        "requests_seen_by_emulator": len(arrivals),
        "throttled_429": sum(1 for a in arrivals if a.status == 429),
        "server_errors_5xx": sum(1 for a in arrivals if a.status is not None and a.status >= 500),
        "sustained_fraction_of_limit": sustained_fraction(arrivals, window, limit),
        "complete_windows": len(counts),
        "requests_per_complete_window": counts,
        "mean_requests_per_window": mean,
        "complete_windows_fraction_of_limit": mean / limit if mean is not None else None,
        "busiest_rolling_window": busiest_rolling_window(arrivals, window),
    }
