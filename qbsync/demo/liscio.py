"""A small stand-in for Liscio's platform: it owns accounts, publishes their events to
`liscio.account-events` and applies the commands it reads from `liscio.account-commands`,
as Liscio would (a filled field is a change, so it publishes `account.updated` after it)."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import ACCOUNT_COMMANDS, ACCOUNT_EVENTS
from schemas import AccountCommand, AccountEvent


@dataclass(frozen=True)
class LiscioAccount:
    id: str
    name: str
    status: str = "Client"
    address: dict[str, str | None] | None = None
    phone: str | None = None
    website: str | None = None
    contacts: list[dict[str, Any]] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "address": self.address,
            "phone": self.phone,
            "website": self.website,
            "contacts": self.contacts,
        }


def account_event(
    firm_id: str, account: LiscioAccount, kind: str, command_id: str | None = None
) -> AccountEvent:
    """`command_id`: the `account.create` command an `account.created` event answers."""
    return AccountEvent.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "type": kind,
            "occurred_at": datetime.now(UTC),
            "firm_id": firm_id,
            "account": account.state(),
            "command_id": command_id,
        }
    )


class LiscioStandIn:
    def __init__(self, producer: Producer, bootstrap: str, firm_id: str) -> None:
        self.producer = producer
        self.bootstrap = bootstrap
        self.firm_id = firm_id
        self.accounts: dict[str, LiscioAccount] = {}
        self.commands: list[AccountCommand] = []
        self.published: list[AccountEvent] = []
        self.command_arrived = asyncio.Event()

    async def publish(
        self, account: LiscioAccount, kind: str = "account.updated", command_id: str | None = None
    ) -> AccountEvent:
        self.accounts[account.id] = account
        event = account_event(self.firm_id, account, kind, command_id)
        await self.producer.send(ACCOUNT_EVENTS, f"{self.firm_id}:{account.id}", event)
        self.published.append(event)
        return event

    async def create(self, account: LiscioAccount) -> AccountEvent:
        return await self.publish(account, "account.created")

    async def update(self, account_id: str, **changes: Any) -> AccountEvent:
        return await self.publish(replace(self.accounts[account_id], **changes))

    async def archive(self, account_id: str) -> AccountEvent:
        return await self.publish(self.accounts[account_id], "account.archived")

    async def apply_commands(self, stopping: asyncio.Event) -> None:
        """Read our commands and apply them, until `stopping` is set."""
        consumer = AIOKafkaConsumer(
            self.producer.prefix + ACCOUNT_COMMANDS,
            bootstrap_servers=self.bootstrap,
            group_id=f"{self.producer.prefix}liscio-stand-in-{self.firm_id}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while not stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        command = AccountCommand.model_validate(json.loads(record.value or b"{}"))
                        if command.firm_id == self.firm_id:
                            await self.apply(command)
        finally:
            await consumer.stop()

    async def apply(self, command: AccountCommand) -> None:
        self.commands.append(command)
        self.command_arrived.set()
        fields = command.fields.model_dump(exclude_unset=True)
        if command.type == "account.create":
            # A new account from the QuickBooks customer, answered with the command's id.
            # A command read again (redelivery) is not a second account.
            if any(e.command_id == command.command_id for e in self.published):
                return
            account = LiscioAccount(f"a-{uuid.uuid4().hex[:12]}", command.name or "", **fields)
            await self.publish(account, "account.created", command.command_id)
            return
        if command.account_id not in self.accounts:
            return
        account = self.accounts[command.account_id]
        filled = fill(account, fields)
        if filled != account:
            await self.publish(filled)


def fill(account: LiscioAccount, fields: dict[str, Any]) -> LiscioAccount:
    """`account.fill_fields` as Liscio applies it (CONTRACTS.md, Additions v2): a field of
    the command is set only if the account still has no value for it, so a command that
    arrives after a newer edit never overwrites that edit."""
    empty = {name: value for name, value in fields.items() if not getattr(account, name, None)}
    return replace(account, **empty) if empty else account
