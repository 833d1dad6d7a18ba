"""The outbox on the real stack: rows written with COPY, published by the relay as one
confirmed batch per topic (`Producer.batch`, whose partitioning test_bulk_producer.py
checks against `send`) and deleted once the broker acknowledged them; audit rows written
with COPY keep a missing value as JSON null."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from qbsync.db.links import AuditEntry, record_audit
from qbsync.db.outbox import OutboxRelay, enqueue
from qbsync.db.pool import Pool
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import SYNC_LINKS
from schemas import LinkEvent
from tests.conftest import unique
from tests.support.stack import Stack


async def records_of(
    bootstrap: str, topic: str, keys: set[str], expect: int, timeout: float = 30.0
) -> list[tuple[str, int, bytes]]:
    """(key, partition, value) of the topic's messages with one of `keys`, in each
    partition's order, once `expect` of them arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    found: list[tuple[str, int, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in keys:
                        found.append((key, record.partition, record.value or b""))
    finally:
        await consumer.stop()
    return found


def link_event(firm: str, account: str) -> LinkEvent:
    return LinkEvent(
        event_id=unique("e"),
        type="link.created",
        firm_id=firm,
        account_id=account,
        realm_id="r1",
        customer_id=account.removeprefix("a"),
        how="auto",
        reason="names equal ignoring case",
        at=datetime.now(UTC),
    )


async def test_the_relay_publishes_the_encoded_rows_and_deletes_them(
    stack: Stack, pool: Pool, producer: Producer
) -> None:
    firm = unique("firm")
    events = [link_event(firm, f"a{n}") for n in range(25)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [(SYNC_LINKS, f"{firm}:{e.account_id}", e) for e in events])
    relay = OutboxRelay(pool, producer)

    while await pool.fetchval("SELECT count(*) FROM outbox WHERE key LIKE $1", f"{firm}:%"):
        await relay.publish_once(limit=10)  # several rounds, each a batch per topic

    keys = {f"{firm}:{e.account_id}" for e in events}
    found = await records_of(
        stack.kafka_bootstrap, producer.prefix + SYNC_LINKS, keys, expect=len(events)
    )
    published = {key: value for key, _, value in found}
    assert len(found) == len(events)
    for event in events:
        sent = published[f"{firm}:{event.account_id}"]
        assert sent == event.model_dump_json(exclude_unset=True).encode()
        assert LinkEvent.model_validate_json(sent) == event


async def test_audit_rows_keep_a_missing_value_as_json_null(pool: Pool) -> None:
    firm = unique("firm")
    address = {"line1": "1 Main St", "city": "Austin"}
    async with pool.acquire() as conn, conn.transaction():
        await record_audit(
            conn,
            [
                AuditEntry(
                    firm_id=firm,
                    action="field.written",
                    reason="first sync: value only in QuickBooks",
                    account_id="a1",
                    side="liscio",
                    field="address",
                    old_value=None,
                    new_value=address,
                ),
                AuditEntry(firm_id=firm, action="link.created", reason="r", new_value="auto"),
            ],
        )
    rows = await pool.fetch(
        "SELECT action, old_value IS NULL AS sql_null, old_value, new_value FROM audit_log"
        " WHERE firm_id = $1 ORDER BY id",
        firm,
    )
    assert [(r["action"], r["sql_null"], r["old_value"], r["new_value"]) for r in rows] == [
        ("field.written", False, None, address),
        ("link.created", False, None, "auto"),
    ]
