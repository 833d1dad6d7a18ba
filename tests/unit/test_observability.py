"""observe_message: what the consumers count per message."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from qbsync.observability import observe_message


def sample(name: str, topic: str) -> float:
    return REGISTRY.get_sample_value(name, {"topic": topic}) or 0.0


def test_a_handled_message_is_consumed_and_timed_not_failed() -> None:
    topic = f"test.{uuid.uuid4().hex}"
    with observe_message(topic):
        pass
    assert sample("qbsync_messages_consumed_total", topic) == 1
    assert sample("qbsync_message_processing_seconds_count", topic) == 1
    assert sample("qbsync_messages_failed_total", topic) == 0


def test_a_raising_handler_is_counted_failed_and_the_error_goes_on() -> None:
    topic = f"test.{uuid.uuid4().hex}"
    with pytest.raises(ValueError), observe_message(topic):
        raise ValueError("boom")
    assert sample("qbsync_messages_consumed_total", topic) == 1
    assert sample("qbsync_messages_failed_total", topic) == 1


def test_a_failure_the_handler_recovers_from_is_counted_when_marked() -> None:
    topic = f"test.{uuid.uuid4().hex}"
    for _ in range(3):
        with observe_message(topic) as observed:
            observed.mark_failed()  # e.g. dead-lettered and skipped
    assert sample("qbsync_messages_consumed_total", topic) == 3
    assert sample("qbsync_messages_failed_total", topic) == 3


def test_cancellation_mid_message_counts_nothing() -> None:
    topic = f"test.{uuid.uuid4().hex}"
    with pytest.raises(asyncio.CancelledError), observe_message(topic):
        raise asyncio.CancelledError
    assert sample("qbsync_messages_consumed_total", topic) == 0
    assert sample("qbsync_message_processing_seconds_count", topic) == 0
