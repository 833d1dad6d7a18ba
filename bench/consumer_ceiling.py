"""How fast can a consumer do nothing? The ceiling of each way of reading a topic.

N AccountEvents (the Sync Now benchmark's, pre-encoded) go to a fresh
`liscio.account-events` under a topic prefix of the run's own; then each consumer reads
all of them in a group of its own and does nothing with them:

- `faust`: a faust agent with `stream.take_events(1000, 0.05)`, as the matcher's agents
  used to read (the app started in this process, its worker's machinery included);
- `aiokafka`: `AIOKafkaConsumer.getmany(max_records=...)` in a loop.

Printed per consumer: messages/s and this process's own CPU µs per message (the figure
that does not depend on the neighbours). The topics are deleted afterwards.

    .venv/bin/pip install -c constraints.txt -e '.[bench]'   # faust: no service needs it
    .venv/bin/python -m bench.consumer_ceiling --messages 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import faust
from aiokafka import AIOKafkaConsumer

from bench.sync_scenario import Scenario, account_event
from qbsync.kafka.admin import connect_admin, ensure_topics
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import ACCOUNT_EVENTS, all_specs


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(name: str, messages: int, read: Callable[[], Awaitable[None]]) -> None:
    wall, cpu = time.perf_counter(), own_cpu_seconds()
    await read()
    wall, cpu = time.perf_counter() - wall, own_cpu_seconds() - cpu
    print(
        f"{name:>10}: {messages / wall:>9,.0f} messages/s, {cpu / messages * 1e6:6.1f} µs CPU each"
    )


async def read_with_faust(bootstrap: str, topic: str, messages: int) -> None:
    app = faust.App(
        f"ceiling-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        key_serializer="raw",
        value_serializer="raw",
        datadir=tempfile.mkdtemp(prefix="ceiling-faust-"),
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_wait_empty=False,
    )
    done = asyncio.Event()
    seen = 0

    @app.agent(app.topic(topic, key_type=bytes, value_type=bytes))  # type: ignore[misc]
    async def no_op(stream: object) -> None:
        nonlocal seen
        async for events in stream.take_events(1000, 0.05):  # type: ignore[attr-defined]
            seen += len(events)
            if seen >= messages:
                done.set()

    await app.start()
    try:
        await done.wait()
    finally:
        await app.stop()


async def read_with_aiokafka(bootstrap: str, topic: str, messages: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-aiokafka-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = 0
        while seen < messages:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(records) for records in batches.values())
    finally:
        await consumer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    prefix = f"ceiling{uuid.uuid4().hex[:8]}."
    await ensure_topics(bootstrap, prefix)
    try:
        producer = Producer(bootstrap, prefix)
        await producer.start()
        firm, now = "ceiling-firm", datetime.now(UTC)
        scenario = Scenario(customers=args.messages, accounts=args.messages)
        for account in scenario.make_accounts():
            await producer.send_soon(
                ACCOUNT_EVENTS, f"{firm}:{account.account_id}", account_event(firm, account, now)
            )
        await producer.flush()
        await producer.stop()
        topic = prefix + ACCOUNT_EVENTS
        await measure(
            "faust", args.messages, lambda: read_with_faust(bootstrap, topic, args.messages)
        )
        await measure(
            "aiokafka", args.messages, lambda: read_with_aiokafka(bootstrap, topic, args.messages)
        )
    finally:
        admin = await connect_admin(bootstrap, attempts=3)
        try:
            await admin.delete_topics([prefix + spec.name for spec in all_specs()])
        finally:
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
