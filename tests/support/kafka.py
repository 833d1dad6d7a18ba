"""Reading what services wrote to a topic."""

from __future__ import annotations

import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer


async def read_topic(
    bootstrap: str, topic: str, *, expect: int = 1, timeout: float = 30.0
) -> list[tuple[str, dict[str, Any]]]:
    """(key, JSON value) of every message from the start, once at least `expect` arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expect and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    key = (record.key or b"").decode()
                    found.append((key, json.loads(record.value or b"null")))
    finally:
        await consumer.stop()
    return found


async def read_headers(
    bootstrap: str, topic: str, key_prefix: str, *, timeout: float = 2.0
) -> list[dict[str, bytes]]:
    """The headers of every message from the start whose key starts with `key_prefix`."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[dict[str, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(
                    dict(record.headers)
                    for record in records
                    if (record.key or b"").decode().startswith(key_prefix)
                )
    finally:
        await consumer.stop()
    return found
