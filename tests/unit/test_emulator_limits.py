"""The emulator's throttles, tokens and fault plans (pure logic, no HTTP)."""

from __future__ import annotations

import random

import pytest

from qbsync.emulator.faults import FaultSettings, plan
from qbsync.emulator.limits import LimitSettings, RealmLimiter, retry_after_header
from qbsync.emulator.tokens import InvalidGrant, RotationSettings, TokenRegistry


def limiter(**settings: float) -> RealmLimiter:
    return RealmLimiter(LimitSettings(**settings))  # type: ignore[arg-type]


def test_requests_beyond_the_window_quota_wait_until_the_oldest_leaves() -> None:
    limits = limiter(max_requests_per_window=3, window_seconds=10.0)
    for at in (100.0, 101.0, 102.0):
        assert limits.try_admit(at) is None
        limits.release()
    assert limits.try_admit(103.0) == pytest.approx(7.0)
    assert limits.try_admit(110.0) is None  # the request of 100.0 left the window


def test_batch_items_each_count_one_against_the_window() -> None:
    limits = limiter(max_requests_per_window=30, window_seconds=60.0)
    assert limits.try_admit(0.0, cost=25, batch=True) is None
    limits.release()
    assert limits.try_admit(1.0, cost=6, batch=True) == pytest.approx(59.0)
    assert limits.try_admit(1.0, cost=5, batch=True) is None
    assert limits.used_in_window(1.0) == 30


def test_batch_requests_have_their_own_per_window_limit() -> None:
    limits = limiter(max_batches_per_window=2, window_seconds=60.0)
    for at in (0.0, 1.0):
        assert limits.try_admit(at, cost=1, batch=True) is None
        limits.release()
    assert limits.try_admit(2.0, cost=1, batch=True) == pytest.approx(58.0)
    assert limits.try_admit(2.0) is None  # a plain request is not a batch


def test_in_flight_limit_refuses_until_one_is_released() -> None:
    limits = limiter(max_in_flight=2)
    assert limits.try_admit(0.0) is None
    assert limits.try_admit(0.0) is None
    assert limits.try_admit(0.0) == 1.0
    limits.release()
    assert limits.try_admit(0.0) is None
    snapshot = limits.snapshot(0.0)
    assert snapshot["peak_in_flight"] == 2
    assert snapshot["throttled_total"] == 1
    assert snapshot["used_in_window"] == 3  # refused requests do not use the quota


def test_a_batch_larger_than_the_whole_quota_waits_a_full_window() -> None:
    limits = limiter(max_requests_per_window=10, window_seconds=6.0)
    assert limits.try_admit(0.0, cost=11, batch=True) == 6.0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(6.01) == "7"


def test_refresh_tokens_rotate_and_the_used_one_becomes_invalid() -> None:
    # Strict rotation; Intuit's 24-hour grace is tests/unit/test_emulator_tokens.py's.
    tokens = TokenRegistry(
        access_token_seconds=60, rotation=RotationSettings(previous_token_seconds=0)
    )
    first = tokens.issue_refresh_token("r1", now=0.0)
    grant = tokens.refresh(first, now=1.0)
    assert grant.refresh_token != first
    assert tokens.realm_of(grant.access_token, now=2.0) == "r1"
    with pytest.raises(InvalidGrant):
        tokens.refresh(first, now=2.0)
    assert tokens.refresh(grant.refresh_token, now=3.0).refresh_token != grant.refresh_token


def test_access_tokens_expire() -> None:
    tokens = TokenRegistry(access_token_seconds=60)
    grant = tokens.refresh(tokens.issue_refresh_token("r1", now=0.0), now=0.0)
    assert tokens.realm_of(grant.access_token, now=59.0) == "r1"
    assert tokens.realm_of(grant.access_token, now=60.0) is None
    assert tokens.is_expired(grant.access_token, now=60.0)
    assert not tokens.is_expired("never-issued", now=60.0)


def test_fault_plan_rates_and_latency() -> None:
    rng = random.Random(7)
    settings = FaultSettings(latency_ms=80, jitter_ms=20, fault_5xx_rate=0.25, drop_rate=0.5)
    plans = [plan(settings, rng, write=True) for _ in range(4000)]
    assert all(0.08 <= p.delay_seconds <= 0.1 for p in plans)
    failed = sum(p.fail_5xx for p in plans) / len(plans)
    dropped = sum(p.drop for p in plans) / len(plans)
    assert 0.2 < failed < 0.3
    assert 0.33 < dropped < 0.42  # drops only among requests that did not fail (0.75 * 0.5)
    assert not any(p.drop for p in (plan(settings, rng, write=False) for _ in range(200)))


def test_fault_settings_reject_unknown_names_and_bad_rates() -> None:
    with pytest.raises(ValueError, match="unknown"):
        FaultSettings().updated({"lag_ms": 5})
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSettings().updated({"drop_rate": 1.5})
    assert FaultSettings().updated({"latency_ms": 80}).latency_ms == 80.0
