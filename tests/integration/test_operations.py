"""Operations on the real broker: `qbsync lag`, the lag exporter, `qbsync dlq`, and the
message metrics of the shared consumer paths.

Each test works under a topic prefix and in a database of its own, so the lag, the dead
letters and the outbox it sees are only its own (other tests of the session share the
session's prefix and database)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from qbsync.crypto import TokenCipher
from qbsync.db import connect_pool, migrate, runs
from qbsync.db.connections import store_connection
from qbsync.errors import InvalidMessage
from qbsync.kafka.admin import connect_admin, ensure_topics
from qbsync.kafka.consumer import ConsumerLoop
from qbsync.kafka.dead_letters import DeadLetterSink
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import ACCOUNT_EVENTS, SYNC_REQUESTS, all_specs
from tests.conftest import unique
from tests.support.kafka import read_topic
from tests.support.keys import TEST_SECRET_KEY
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO, Stack
from tests.support.terminal import read_available, start_in_terminal


@dataclass
class Isolated:
    """A topic prefix of the test's own, its topics, a producer and the CLI's environment."""

    prefix: str
    env: dict[str, str]
    producer: Producer
    bootstrap: str

    async def qbsync(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbsync.cli",
            *args,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        result = subprocess.CompletedProcess(
            list(args), process.returncode or 0, out.decode(), err.decode()
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    async def lag_of(self, service: str) -> dict[str, Any] | None:
        """The group's entry of `qbsync lag --json`, None while the group has no commits."""
        report = json.loads((await self.qbsync("lag", "--json", "--sample-seconds", "0")).stdout)
        group = f"{self.prefix}qbsync-{service}"
        return next((g for g in report["groups"] if g["group"] == group), None)


@pytest_asyncio.fixture
async def isolated(stack: Stack, service_env: dict[str, str]) -> AsyncIterator[Isolated]:
    tag = uuid.uuid4().hex[:8]
    prefix = f"ops{tag}."
    await ensure_topics(stack.kafka_bootstrap, prefix)
    producer = Producer(stack.kafka_bootstrap, prefix)
    await producer.start()
    # A database of its own too: the session's holds outbox rows other tests left (a match
    # step run in-process enqueues and never relays), which this test's matcher would
    # otherwise publish under this prefix (seen: 79 customers in qbo.customers).
    database = f"qbsync_ops_{tag}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    parts = urlsplit(stack.database_url)
    env = {
        **service_env,
        "QBSYNC_TOPIC_PREFIX": prefix,
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{database}")),
    }
    yield Isolated(prefix, env, producer, stack.kafka_bootstrap)
    await producer.stop()
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    await admin.close()
    # The broker outlives test sessions: leave no topics behind (services are stopped by now,
    # `spawn` being torn down first).
    admin = await connect_admin(stack.kafka_bootstrap)
    try:
        await admin.delete_topics([prefix + spec.name for spec in all_specs()])
    finally:
        await admin.close()


def account_event(firm: str, account: str) -> dict[str, Any]:
    return {
        "event_id": unique("evt"),
        "type": "account.created",
        "occurred_at": "2026-11-25T16:00:00Z",
        "firm_id": firm,
        "account": {"id": account, "name": f"Account {account}", "status": "Prospect"},
    }


async def metrics_url(process: ServiceProcess) -> str:
    """Where a process serves /metrics, from its start line (it may have taken a free port)."""

    async def logged() -> str | None:
        for line in process.output().splitlines():
            if line.startswith("{") and '"metrics"' in line:
                return str(json.loads(line)["metrics"])
        assert process.process.poll() is None, process.output()[-2000:]
        return None

    return await eventually(logged, timeout=30, what="exporter started")


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def exported_lag(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], group: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "kafka_consumergroup_lag" and ("consumergroup", group) in labels
    )


async def test_lag_counts_events_produced_while_the_matcher_is_stopped_then_drains_to_zero(
    isolated: Isolated, spawn: Callable[..., ServiceProcess]
) -> None:
    group = f"{isolated.prefix}qbsync-matcher"
    events_topic = isolated.prefix + ACCOUNT_EVENTS
    exporter = spawn("qbsync.lag_exporter", **isolated.env)
    matcher = spawn("services.matcher", **isolated.env)
    firm = unique("firm")
    await isolated.producer.send(ACCOUNT_EVENTS, f"{firm}:warm", account_event(firm, "warm"))

    running = matcher

    async def caught_up() -> bool:
        assert running.process.poll() is None, running.output()[-3000:]
        entry = await isolated.lag_of("matcher")
        return entry is not None and entry["lag"] == 0

    await eventually(caught_up, timeout=90, interval=0.5, what="matcher committed its first event")
    assert matcher.stop() == 0, matcher.output()[-2000:]
    ends_before = await _end_offsets(isolated.bootstrap, events_topic)

    produced = 12
    for number in range(produced):
        account = f"a{number}"
        await isolated.producer.send(
            ACCOUNT_EVENTS, f"{firm}:{account}", account_event(firm, account)
        )

    entry = await isolated.lag_of("matcher")
    # Should it differ, say all there is (it once did: see the `isolated` fixture).
    assert entry is not None and entry["lag"] == produced, json.dumps(
        {"entry": entry, "ends_before": ends_before, "matcher": matcher.output()[-3000:]}
    )
    rows = [row for row in entry["partitions"] if row["topic"] == events_topic]
    assert sum(row["lag"] for row in rows) == produced
    for row in rows:
        committed = row["committed_offset"] or 0
        assert row["lag"] == row["end_offset"] - committed
    url = await metrics_url(exporter)
    assert exported_lag(await scrape(url), group) == produced

    running = restarted = spawn("services.matcher", **isolated.env)
    await eventually(caught_up, timeout=90, interval=0.5, what="lag back to 0")
    samples = await eventually(
        lambda: _when(scrape(url), lambda s: exported_lag(s, group) == 0),
        timeout=30,
        what="exporter reports lag 0",
    )
    assert any(
        name == "kafka_consumergroup_current_offset" and ("consumergroup", group) in labels
        for name, labels in samples
    )
    assert restarted.process.poll() is None


async def _when(probe: Any, condition: Callable[[Any], bool]) -> Any:
    value = await probe
    return value if condition(value) else None


async def test_a_poisoned_message_is_shown_and_redriven_exactly_once(
    isolated: Isolated, spawn: Callable[..., ServiceProcess]
) -> None:
    dlq_topic = isolated.prefix + ACCOUNT_EVENTS + ".dlq"
    matcher = spawn("services.matcher", **isolated.env)
    exporter = spawn("qbsync.lag_exporter", **isolated.env)
    key = f"{unique('firm')}:poison"
    await isolated.producer.send(ACCOUNT_EVENTS, key, b"{not json")

    async def dead_letters() -> list[dict[str, Any]]:
        listed = await isolated.qbsync("dlq", "list", "--topic", ACCOUNT_EVENTS, "--json")
        return list(json.loads(listed.stdout)["letters"])

    (letter,) = await eventually(dead_letters, timeout=90, interval=0.5, what="dead letter")
    assert letter["key"] == key and letter["service"] == "matcher"
    assert letter["reason"].startswith("schema violation") and letter["redriven"] is False

    shown = await isolated.qbsync(
        "dlq", "show", "--topic", ACCOUNT_EVENTS, "--offset", str(letter["offset"]), "--json"
    )
    details = json.loads(shown.stdout)
    assert details["reason"] == letter["reason"]
    assert details["value"] == {"encoding": "text", "data": "{not json"}
    assert details["source"]["topic"] == ACCOUNT_EVENTS
    text = (await isolated.qbsync("dlq", "show", "--topic", ACCOUNT_EVENTS, "--offset", "0")).stdout
    assert "reason:   schema violation" in text and "{not json" in text

    url = await metrics_url(exporter)
    before = await scrape(url)
    assert before[("qbsync_dlq_pending_messages", frozenset({("topic", dlq_topic)}))] == 1

    # "After a fix": the matcher is stopped so the poison is not dead-lettered straight again.
    assert matcher.stop() == 0, matcher.output()[-2000:]
    ends_before = await _end_offsets(isolated.bootstrap, isolated.prefix + ACCOUNT_EVENTS)
    first = json.loads(
        (await isolated.qbsync("dlq", "redrive", "--topic", ACCOUNT_EVENTS, "--json")).stdout
    )
    assert first["moved"] == 1 and first["skipped"] == 0
    second = await isolated.qbsync("dlq", "redrive", "--topic", ACCOUNT_EVENTS)
    assert second.stdout.strip() == f"moved 0 message(s) back onto {ACCOUNT_EVENTS}"

    back = await _read_new(isolated.bootstrap, isolated.prefix + ACCOUNT_EVENTS, ends_before)
    assert back == [(key.encode(), b"{not json")]
    (after,) = await dead_letters()
    assert after["redriven"] is True
    samples = await scrape(url)
    assert samples[("qbsync_dlq_pending_messages", frozenset({("topic", dlq_topic)}))] == 0
    assert samples[("qbsync_dlq_messages", frozenset({("topic", dlq_topic)}))] == 1


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(8)]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _read_new(
    bootstrap: str, topic: str, since: dict[int, int]
) -> list[tuple[bytes | None, bytes | None]]:
    """The raw (key, value) of every message written to `topic` after the offsets `since`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in since]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[bytes | None, bytes | None]] = []
        for tp in partitions:
            consumer.seek(tp, since[tp.partition])
        deadline = time.monotonic() + 30
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "reading the topic timed out"
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found.extend((r.key, r.value) for r in records)
        return found
    finally:
        await consumer.stop()


async def test_lag_and_dlq_errors_are_one_line_on_stderr(isolated: Isolated) -> None:
    unreachable = Isolated(
        isolated.prefix,
        {**isolated.env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "QBSYNC_CONNECT_ATTEMPTS": "1"},
        isolated.producer,
        isolated.bootstrap,
    )
    failed = await unreachable.qbsync("lag", "--json", check=False)
    assert failed.returncode != 0 and failed.stdout == ""
    # The last line is the error; the retry's warnings may come before it.
    assert failed.stderr.splitlines()[-1].startswith("qbsync: Kafka unreachable"), failed.stderr
    assert "Traceback" not in failed.stderr

    missing = await isolated.qbsync(
        "dlq", "show", "--topic", ACCOUNT_EVENTS, "--offset", "5", check=False
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"qbsync: no dead letter at offset 5 of {isolated.prefix}{ACCOUNT_EVENTS}.dlq[0] "
        "(it holds no messages)"
    )
    unknown = await isolated.qbsync("dlq", "list", "--topic", "sync.links", check=False)
    assert unknown.returncode == 1 and "sync.links has no dead-letter topic" in unknown.stderr

    nowhere = f"none{uuid.uuid4().hex[:8]}."
    absent = Isolated(
        nowhere,
        {**isolated.env, "QBSYNC_TOPIC_PREFIX": nowhere},
        isolated.producer,
        isolated.bootstrap,
    )
    gone = await absent.qbsync("dlq", "list", "--topic", ACCOUNT_EVENTS, check=False)
    assert gone.returncode == 1
    assert f"topic {nowhere}{ACCOUNT_EVENTS}.dlq does not exist" in gone.stderr
    # Asking must not create it (the local broker auto-creates topics asked for by name).
    admin = await connect_admin(isolated.bootstrap)
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(nowhere)]
    finally:
        await admin.close()


async def test_lag_watch_redraws_in_place_until_interrupted(isolated: Isolated) -> None:
    # A group with a commit, made by hand: the watch must show it.
    group = f"{isolated.prefix}qbsync-watched"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=isolated.bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    tp = TopicPartition(isolated.prefix + SYNC_REQUESTS, 0)
    consumer.assign([tp])
    await consumer.commit({tp: 0})
    await consumer.stop()

    # A terminal, so rich draws live (and Ctrl-C reaches the watch as it would there).
    process, leader = await start_in_terminal(
        [sys.executable, "-m", "qbsync.cli", "lag", "--watch", "--interval", "0.2"],
        isolated.env,
        REPO,
    )
    screen = b""

    async def redrawn() -> bool:
        nonlocal screen
        screen += await asyncio.to_thread(read_available, leader)
        # Each redraw moves the cursor up (ESC [1A) over the previous table, then draws.
        return (
            b"qbsync-watched" in screen
            and b"\x1b[1A" in screen
            and screen.count(b"consumer lag at") >= 3
        )

    try:
        await eventually(redrawn, timeout=30, what="the table drawn and redrawn in place")
        process.send_signal(signal.SIGINT)

        async def exited() -> bool:
            # A terminal keeps reading, the last table drawn on the way out included; a pty
            # nobody reads holds a few KB, then blocks the writer (a redraw or two under load).
            await asyncio.to_thread(read_available, leader)
            return process.returncode is not None

        await eventually(exited, timeout=30, what="the watch ended by SIGINT")
        assert process.returncode == 130
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(leader)


async def test_consumer_loop_counts_consumed_failed_dead_lettered_and_produced(
    isolated: Isolated,
) -> None:
    def value(name: str, topic: str) -> float:
        return REGISTRY.get_sample_value(name, {"topic": topic}) or 0.0

    names = (
        "qbsync_messages_consumed_total",
        "qbsync_messages_failed_total",
        "qbsync_messages_dead_lettered_total",
        "qbsync_message_processing_seconds_count",
    )
    before = {name: value(name, SYNC_REQUESTS) for name in names}
    produced_dlq_before = value("qbsync_messages_produced_total", SYNC_REQUESTS + ".dlq")

    async def handle(record: Any) -> None:
        if record.value == b"bad":
            raise InvalidMessage("not a sync request")

    sink = DeadLetterSink(isolated.producer, "ops-test")
    loop = ConsumerLoop(
        isolated.bootstrap, isolated.prefix, "ops-test", {SYNC_REQUESTS: handle}, sink
    )
    await loop.start()
    try:
        for payload in (b"good", b"bad", b"good"):
            await isolated.producer.send(SYNC_REQUESTS, "firm", payload)

        async def all_consumed() -> bool:
            return value("qbsync_messages_consumed_total", SYNC_REQUESTS) - before[names[0]] >= 3

        await eventually(all_consumed, timeout=60, what="three messages consumed")
    finally:
        await loop.stop()
    delta = {name: value(name, SYNC_REQUESTS) - before[name] for name in names}
    assert delta == {
        "qbsync_messages_consumed_total": 3,
        "qbsync_messages_failed_total": 1,
        "qbsync_messages_dead_lettered_total": 1,
        "qbsync_message_processing_seconds_count": 3,
    }
    assert (
        value("qbsync_messages_produced_total", SYNC_REQUESTS + ".dlq") - produced_dlq_before == 1
    )


async def test_lag_piped_to_a_reader_that_left_ends_without_a_traceback(
    isolated: Isolated,
) -> None:
    def lag_to_a_closed_pipe() -> tuple[int, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "qbsync.cli", "lag", "--json", "--sample-seconds", "0"],
            cwd=REPO,
            env={**os.environ, **isolated.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        process.stdout.close()  # the reader (`| head`) left before the report was written
        _, err = process.communicate(timeout=60)
        return process.returncode, err.decode()

    code, err = await asyncio.to_thread(lag_to_a_closed_pipe)
    assert code == 1
    assert "Traceback" not in err, err


async def test_replay_all_on_a_terminal_shows_firms_done_out_of_the_total(
    isolated: Isolated,
) -> None:
    """The runs are moved through their steps by the test here (what the importer and the
    matcher do with a replay request), so that each firm ends when the test says; the
    command draws its bar on a pseudo-terminal."""
    pool = await connect_pool(isolated.env["DATABASE_URL"], attempts=3)
    await migrate(pool)
    firms = [unique("firm") for _ in range(3)]
    for firm in firms:
        await store_connection(pool, TokenCipher(TEST_SECRET_KEY), firm, unique("realm"), "rt")
    process, leader = await start_in_terminal(
        [sys.executable, "-m", "qbsync.cli", "replay", "--all"], isolated.env, REPO, columns=100
    )
    screen = b""

    async def shows(text: bytes) -> bool:
        nonlocal screen
        screen += await asyncio.to_thread(read_available, leader)
        return text in screen

    try:
        requests = await read_topic(
            isolated.bootstrap, isolated.prefix + SYNC_REQUESTS, expect=3, timeout=30
        )
        assert sorted(key for key, _ in requests) == sorted(firms)
        await eventually(lambda: shows(b"0/3"), timeout=30, what="the bar at 0 of 3")
        for done, (firm, request) in enumerate(requests, start=1):
            run, _ = await runs.open_or_join_run(
                pool, firm, request["request_id"], "replay", datetime.now(UTC)
            )
            for step in runs.STEPS:
                await runs.finish_step(pool, run.run_id, step, {})
            await eventually(lambda d=done: shows(f"{d}/3".encode()), timeout=30, what=f"{done}/3")

        async def exited() -> bool:
            await shows(b"")
            return process.returncode is not None

        await eventually(exited, timeout=30, what="replay ended")
        assert process.returncode == 0
        assert b"replayed 3 of 3 firm(s): 0 failed" in screen
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(leader)
        await pool.close()
