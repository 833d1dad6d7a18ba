"""Latency and injected failures, per realm, so clients can be tested against a network
and a service that misbehave the way the real ones do."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class FaultSettings:
    latency_ms: float = 0.0  # added to every API request before it is handled
    jitter_ms: float = 0.0  # plus a uniform random 0..jitter_ms
    fault_5xx_rate: float = 0.0  # share of requests answered 500 without being applied
    drop_rate: float = 0.0  # share of writes applied, then the connection closed unanswered
    slow_rate: float = 0.0  # share of requests answered only after slow_ms more
    slow_ms: float = 5000.0
    # share of requests answered 401 (3200) whatever the token, as QuickBooks answers once
    # the company's authorization of the app is withdrawn: a fresh token does not help
    unauthorized_rate: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> FaultSettings:
        """A copy with `changes` applied; raises ValueError for unknown names or bad values."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        merged = {**self.as_dict(), **changes}
        for name, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number")
            if name.endswith("_rate") and value > 1:
                raise ValueError(f"{name} must be between 0 and 1")
        return FaultSettings(**{name: float(value) for name, value in merged.items()})


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one request."""

    delay_seconds: float
    fail_5xx: bool
    drop: bool
    extra_delay_seconds: float


def plan(settings: FaultSettings, rng: random.Random, *, write: bool) -> FaultPlan:
    delay = settings.latency_ms + (rng.uniform(0, settings.jitter_ms) if settings.jitter_ms else 0)
    fail = settings.fault_5xx_rate > 0 and rng.random() < settings.fault_5xx_rate
    drop = write and settings.drop_rate > 0 and rng.random() < settings.drop_rate
    slow = settings.slow_rate > 0 and rng.random() < settings.slow_rate
    return FaultPlan(
        delay_seconds=delay / 1000.0,
        fail_5xx=fail,
        drop=drop and not fail,
        extra_delay_seconds=settings.slow_ms / 1000.0 if slow else 0.0,
    )


def unauthorized(settings: FaultSettings, rng: random.Random) -> bool:
    """Whether this request is refused as unauthenticated (checked before anything else)."""
    return settings.unauthorized_rate > 0 and rng.random() < settings.unauthorized_rate
