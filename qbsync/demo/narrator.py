"""Tells a newcomer what the system does, as it does it: every link made or removed
(`sync.links`), every command sent to Liscio, and every field written, with the reason."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from qbsync.emulator.admin_client import EmulatorAdmin
from qbsync.kafka.topics import ACCOUNT_COMMANDS, SYNC_LINKS


class Narrator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bootstrap: str,
        prefix: str,
        firm_id: str,
        say: Callable[[str], None],
    ) -> None:
        self.pool = pool
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.firm_id = firm_id
        self.say = say
        self.last_heard = time.monotonic()
        self._audit_seen = 0

    async def run(self, stopping: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            self.prefix + SYNC_LINKS,
            self.prefix + ACCOUNT_COMMANDS,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stopping.is_set():
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        self.tell(
                            record.topic.removeprefix(self.prefix),
                            json.loads(record.value or b"{}"),
                        )
        finally:
            await consumer.stop()

    def tell(self, topic: str, message: dict[str, Any]) -> None:
        self.last_heard = time.monotonic()
        if topic == SYNC_LINKS:
            verb = "linked  " if message["type"] == "link.created" else "delinked"
            self.say(
                f"   [{verb}] Liscio {message['account_id']} <-> QuickBooks customer"
                f" {message['customer_id']} ({message['how']}): {message['reason']}"
            )
        else:
            fields = ", ".join(f"{k}={_show(v)}" for k, v in message["fields"].items())
            self.say(f"   [to Liscio] fill {message['account_id']}: {fields}")

    async def accounts_stored(self, count: int) -> bool:
        stored = await self.pool.fetchval(
            "SELECT count(*) FROM accounts WHERE firm_id = $1", self.firm_id
        )
        return bool(stored >= count)

    async def pusher_has_seen(self, event_ids: list[str]) -> bool:
        seen = await self.pool.fetchval(
            "SELECT count(*) FROM processed_messages WHERE consumer = 'pusher'"
            " AND message_id = ANY($1::text[])",
            event_ids,
        )
        return bool(seen == len(event_ids))

    async def fields_written(self) -> None:
        rows = await self.pool.fetch(
            "SELECT id, account_id, side, field, new_value, reason FROM audit_log"
            " WHERE firm_id = $1 AND action = 'field.written' AND id > $2 ORDER BY id",
            self.firm_id,
            self._audit_seen,
        )
        for row in rows:
            self._audit_seen = row["id"]
            where = "QuickBooks" if row["side"] == "quickbooks" else "Liscio"
            value = _show(row["new_value"])
            self.say(f"   [written] {row['field']} of {row['account_id']} in {where} = {value}")
            self.say(f"             because {row['reason']}")

    async def customer_field(
        self, admin: EmulatorAdmin, realm_id: str, account_id: str, field: str, value: str
    ) -> bool:
        customer_id = await self.pool.fetchval(
            "SELECT customer_id FROM links WHERE firm_id = $1 AND account_id = $2",
            self.firm_id,
            account_id,
        )
        customer = await admin.customer(realm_id, customer_id) if customer_id else None
        if not customer:
            return False
        current = {
            "phone": (customer.get("PrimaryPhone") or {}).get("FreeFormNumber"),
            "website": (customer.get("WebAddr") or {}).get("URI"),
        }
        return current.get(field) == value

    async def quiet(self) -> bool:
        await self.fields_written()
        return time.monotonic() - self.last_heard > 3


def _show(value: Any) -> str:
    """An address as one line; other values as they are."""
    if isinstance(value, dict):
        parts = ("line1", "line2", "city", "state", "postal_code", "country")
        return repr(", ".join(str(value[p]) for p in parts if value.get(p)))
    return repr(value)
