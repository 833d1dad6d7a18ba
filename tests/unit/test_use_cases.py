"""The use cases of qbsync/sync on the in-memory unit of work and the real QuickBooks
client against the in-process emulator (no Kafka, no PostgreSQL): what each one leaves
behind (links, outbox messages, audit, attention, QuickBooks' customers) is what the
product rules (DOMAIN.md) ask. Locks, concurrency, the outbox relay and the SQL are
proven by the integration tests on the real database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from qbsync import metrics
from qbsync.emulator import RunningEmulator
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import ACCOUNT_COMMANDS, QBO_CUSTOMERS, SYNC_LINKS
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.mapping import customer_record
from qbsync.quickbooks.tokens import InMemoryTokenStore
from qbsync.sync import copies
from qbsync.sync.account_events import (
    CONSUMER,
    handle_account_events,
    reconcile_unfinished_creates,
)
from qbsync.sync.advance import RunAdvancer
from qbsync.sync.creating import create_or_link
from qbsync.sync.field_sync import stable_id, sync_account
from qbsync.sync.freshness import apply_change_notice, poll_realm
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.removal import delink_account
from qbsync.sync.steps import match_firm, push_firm
from schemas import AccountEvent, CustomerRecord, QboChangeNotice
from tests.support.accounts import account_event
from tests.support.memory_uow import MemoryUnitOfWork

FIRM = "firm-1"


@dataclass
class World:
    uow: MemoryUnitOfWork
    quickbooks: QuickBooksClient
    emulator: RunningEmulator
    realm_id: str

    async def customer_in_quickbooks(self, display_name: str, **fields: Any) -> dict[str, Any]:
        return await self.emulator.admin.create_customer_as_user(
            self.realm_id, {"DisplayName": display_name, **fields}
        )

    async def quickbooks_customer(self, customer_id: str) -> dict[str, Any]:
        found = await self.emulator.admin.customer(self.realm_id, customer_id)
        assert found is not None
        return found

    async def customers_named(self, name: str) -> list[dict[str, Any]]:
        everyone = await self.emulator.admin.customers(self.realm_id)
        return [c for c in everyone if c["DisplayName"].casefold() == name.casefold()]

    async def import_customers(self) -> None:
        """What an import leaves in the matcher's copy: every customer of the realm."""
        records = [
            customer_record(self.realm_id, c, source="import", firm_id=FIRM)
            async for c in self.quickbooks.customers(self.realm_id, include_inactive=True)
        ]
        await copies.keep_customers(self.uow, records)

    async def writes_seen(self) -> list[str]:
        """The methods and paths of the customer writes QuickBooks received."""
        return [
            r["path"]
            for r in await self.emulator.admin.requests(self.realm_id)
            if r["method"] == "POST" and r["path"].endswith("/customer")
        ]

    def links(self) -> dict[str, tuple[str, str]]:
        """account id -> (customer id, how)"""
        return {a: (link.customer_id, link.how) for (_, a), link in self.uow.state.links.items()}

    def attention(self, account_id: str) -> str | None:
        return self.uow.state.accounts[(FIRM, account_id)].attention


def event(
    account_id: str,
    name: str,
    *,
    kind: str = "account.created",
    status: str | None = "Client",
    at: datetime | None = None,
    **fields: Any,
) -> AccountEvent:
    return account_event(FIRM, account_id, name, kind=kind, status=status, at=at, **fields)


def commands(uow: MemoryUnitOfWork) -> dict[str, dict[str, Any]]:
    """account id -> the fields of its fill command"""
    found = {}
    for key, value in uow.messages(ACCOUNT_COMMANDS):
        command = json.loads(value)
        assert command["type"] == "account.fill_fields"
        found[key.split(":", 1)[1]] = command["fields"]
    return found


def link_events(uow: MemoryUnitOfWork) -> list[tuple[str, str, str]]:
    """(type, account id, reason) of every sync.links message, in order"""
    events = [json.loads(value) for _, value in uow.messages(SYNC_LINKS)]
    return [(e["type"], e["account_id"], e["reason"]) for e in events]


async def noop() -> None:
    return None


@pytest.fixture
async def world(emulator: RunningEmulator) -> AsyncIterator[World]:
    realm = await emulator.admin.create_realm(contents="empty")
    client = QuickBooksClient(
        base_url=emulator.base_url,
        token_url=emulator.token_url,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        tokens=InMemoryTokenStore({realm["realm_id"]: realm["refresh_token"]}),
    )
    uow = MemoryUnitOfWork()
    uow.connect(FIRM, realm["realm_id"])
    yield World(uow, client, emulator, realm["realm_id"])
    await client.aclose()


PHONE = {"PrimaryPhone": {"FreeFormNumber": "512-555-0101"}}


async def test_matching_links_equal_names_and_first_syncs_both_ways(world: World) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd", **PHONE)
    bolt = await world.customer_in_quickbooks("Bolt Inc")
    await world.customer_in_quickbooks("Dup Co")
    await world.import_customers()
    await copies.keep_accounts(
        world.uow,
        [
            event("a-acme", "ACME LTD"),  # QuickBooks' phone fills Liscio
            event("a-bolt", "bolt inc", website="https://bolt.example"),  # to QuickBooks
            event("a-dup1", "Dup Co"),
            event("a-dup2", "DUP CO"),  # two accounts of the name: a person decides
            event("a-none", "Nobody Here"),
        ],
    )

    outcome = await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, "run-1", noop)

    assert (outcome.linked, outcome.ambiguous) == (2, 1)
    assert world.links() == {"a-acme": (acme["Id"], "auto"), "a-bolt": (bolt["Id"], "auto")}
    assert all(link.first_synced_at for link in world.uow.state.links.values())
    assert commands(world.uow) == {"a-acme": {"phone": "512-555-0101"}}
    assert (await world.quickbooks_customer(bolt["Id"]))["WebAddr"]["URI"] == (
        "https://bolt.example"
    )
    assert sorted(link_events(world.uow)) == [
        ("link.created", "a-acme", "Sync Now: names equal ignoring case"),
        ("link.created", "a-bolt", "Sync Now: names equal ignoring case"),
    ]
    (ambiguity, run_id), *_ = world.uow.state.ambiguities[FIRM]
    assert (sorted(ambiguity.account_ids), run_id) == (["a-dup1", "a-dup2"], "run-1")
    written = [(e.account_id, e.side, e.field, e.reason) for e in world.uow.state.audit]
    assert sorted(w for w in written if w[1] is not None) == [
        # the rule's name is said once (issue 17: "first sync: first sync: ...")
        ("a-acme", "liscio", "phone", "first sync: value only in QuickBooks"),
        ("a-bolt", "quickbooks", "website", "first sync: value only in Liscio"),
    ]
    # the customer our write returned is in the copy and on its way to qbo.customers
    assert [key for key, _ in world.uow.messages(QBO_CUSTOMERS)] == [
        f"{world.realm_id}:{bolt['Id']}"
    ]


async def test_subsequent_syncs_write_liscio_changes_and_nothing_when_equal(
    world: World,
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd", **PHONE)
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    before = len(await world.writes_seen())

    # unchanged: no call at all (the fill to Liscio happened in the first sync)
    counts = await sync_account(world.uow, world.quickbooks, FIRM, "a-acme", reason="test")
    assert (counts.unchanged, counts.quickbooks_writes) == (1, 0)
    # QuickBooks-only values never travel again, Liscio's overwrite QuickBooks'
    await copies.keep_accounts(
        world.uow, [event("a-acme", "Acme Ltd", kind="account.updated", phone="512-555-0202")]
    )
    counts = await sync_account(world.uow, world.quickbooks, FIRM, "a-acme", reason="test")

    assert counts.quickbooks_writes == 1
    assert len(await world.writes_seen()) == before + 1
    stored = await world.quickbooks_customer(acme["Id"])
    assert stored["PrimaryPhone"]["FreeFormNumber"] == "512-555-0202"
    assert stored["DisplayName"] == "Acme Ltd"  # names are never synced
    assert commands(world.uow) == {"a-acme": {"phone": "512-555-0101"}}  # only the first


async def test_a_new_account_is_created_in_quickbooks_and_linked(world: World) -> None:
    created = event("a-new", "Fresh Client LLC", phone="512-555-0303")
    await copies.keep_accounts(world.uow, [created])

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-new", created.event_id
    )

    assert outcome.outcome == "created"
    (customer,) = await world.customers_named("Fresh Client LLC")
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "512-555-0303"
    assert world.links() == {"a-new": (customer["Id"], "created")}
    assert world.uow.state.pending[(FIRM, "a-new")].create.state == "done"
    assert link_events(world.uow) == [
        ("link.created", "a-new", "new Liscio account created in QuickBooks")
    ]


async def test_a_new_account_whose_name_quickbooks_has_is_linked_not_created(
    world: World,
) -> None:
    existing = await world.customer_in_quickbooks("Known Name Co", **PHONE)
    created = event("a-known", "known name co")
    await copies.keep_accounts(world.uow, [created])

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-known", created.event_id
    )

    assert (outcome.outcome, outcome.customer_id) == ("linked", existing["Id"])
    assert len(await world.customers_named("Known Name Co")) == 1
    assert world.links() == {"a-known": (existing["Id"], "auto")}
    assert commands(world.uow) == {"a-known": {"phone": "512-555-0101"}}  # its first sync


async def test_a_create_retried_after_a_crash_reuses_its_requestid(world: World) -> None:
    created = event("a-crash", "Crashed Midway Inc")
    await copies.keep_accounts(world.uow, [created])
    request_id = stable_id("create", FIRM, "a-crash", created.event_id)
    # The crashed attempt: recorded, QuickBooks created the customer, nothing committed after.
    await world.uow.direct.pending_creates.begin(FIRM, "a-crash", request_id, created.event_id)
    first = await world.quickbooks.create_customer(
        world.realm_id, {"DisplayName": "Crashed Midway Inc"}, request_id=request_id
    )

    # redelivered with another event id: the recorded request id is the one sent again
    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-crash", "redelivery"
    )

    assert (outcome.outcome, outcome.customer_id) == ("created", first["Id"])
    assert len(await world.customers_named("Crashed Midway Inc")) == 1
    assert world.links() == {"a-crash": (first["Id"], "created")}


async def test_reconciling_finishes_a_create_left_unfinished(world: World) -> None:
    created = event("a-left", "Left Unfinished Ltd")
    await copies.keep_accounts(world.uow, [created])
    await world.uow.direct.pending_creates.begin(FIRM, "a-left", "req-left", created.event_id)

    assert await reconcile_unfinished_creates(world.uow, world.quickbooks) == 1

    (customer,) = await world.customers_named("Left Unfinished Ltd")
    assert world.links() == {"a-left": (customer["Id"], "created")}
    assert await world.uow.direct.pending_creates.unfinished() == []


async def test_a_create_the_account_was_linked_after_is_settled_not_made_after_a_delink(
    world: World,
) -> None:
    """Found by make chaos: the pusher recorded the create of a new account while Sync Now
    was linking it (the match step's transaction not yet committed), then found it linked
    under the account's lock and left the create unfinished. After the customer was merged
    away in QuickBooks (delinked), the next pusher start "finished" that create: a second
    customer for the account, and a link rule 9 says must not come back."""
    merged = await world.customer_in_quickbooks("MERGED AWAY CO")
    created = event("a-merge", "Merged Away Co")
    await copies.keep_accounts(world.uow, [created])
    request_id = stable_id("create", FIRM, "a-merge", created.event_id)
    # The pusher's create, recorded before the account's lock...
    await world.uow.direct.pending_creates.begin(FIRM, "a-merge", request_id, created.event_id)
    # ... while Sync Now links the account (committed first).
    await world.import_customers()
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    assert world.links() == {"a-merge": (merged["Id"], "auto")}

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-merge", created.event_id
    )
    assert outcome.outcome == "already_linked"
    assert await world.uow.direct.pending_creates.unfinished() == []

    # The customer is merged away: delinked. A restarted pusher has nothing left to create.
    assert await delink_account(world.uow, FIRM, "a-merge", "customer merged away")
    assert await reconcile_unfinished_creates(world.uow, world.quickbooks) == 0
    assert world.links() == {}
    assert await world.customers_named("Merged Away Co") == [merged]


async def test_a_late_account_created_of_an_account_linked_and_delinked_creates_nothing(
    world: World,
) -> None:
    """Found by make chaos: a lagging pusher applied an account's account.created after
    Sync Now had linked the account and its customer had been merged away (delinked): it
    created a second customer for the account."""
    merged = await world.customer_in_quickbooks("LATE EVENT CO")
    created = event("a-late", "Late Event Co")
    await copies.keep_accounts(world.uow, [created])
    await world.import_customers()
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    assert await delink_account(world.uow, FIRM, "a-late", "customer merged away")
    await world.emulator.admin.edit_customer_as_user(
        world.realm_id, merged["Id"], {"Active": False}
    )

    writes_before = await world.writes_seen()

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-late", created.event_id
    )

    assert outcome.outcome == "was_linked"
    assert world.links() == {}
    assert [c["Id"] for c in await world.customers_named("Late Event Co")] == [merged["Id"]]
    assert await world.writes_seen() == writes_before
    assert await world.uow.direct.pending_creates.unfinished() == []


async def test_a_crashed_create_retried_after_a_link_and_a_delink_creates_nothing(
    world: World,
) -> None:
    """Found by make chaos (3 duplicates in a 21,283-event run): the pusher recorded a create
    and was killed before its transaction committed; Sync Now then linked the account to the
    customer of its name, which was merged away (delinked). The retry of the create (the
    redelivered event, or the reconciliation at start) sent the recorded requestid, which
    QuickBooks had never seen, and created a second customer for the account."""
    merged = await world.customer_in_quickbooks("CRASHED THEN MERGED CO")
    created = event("a-crashed", "Crashed Then Merged Co")
    await copies.keep_accounts(world.uow, [created])
    request_id = stable_id("create", FIRM, "a-crashed", created.event_id)
    await world.uow.direct.pending_creates.begin(FIRM, "a-crashed", request_id, created.event_id)
    await world.import_customers()
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    assert await delink_account(world.uow, FIRM, "a-crashed", "customer merged away")
    await world.emulator.admin.edit_customer_as_user(
        world.realm_id, merged["Id"], {"Active": False}
    )
    writes_before = await world.writes_seen()

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-crashed", created.event_id
    )

    assert outcome.outcome == "was_linked"
    assert await reconcile_unfinished_creates(world.uow, world.quickbooks) == 0
    assert world.links() == {}
    assert [c["Id"] for c in await world.customers_named("Crashed Then Merged Co")] == [
        merged["Id"]
    ]
    assert await world.writes_seen() == writes_before


async def test_reconciling_a_create_of_an_account_linked_since_settles_it(world: World) -> None:
    existing = await world.customer_in_quickbooks("Linked Since Ltd")
    created = event("a-since", "Linked Since Ltd")
    await copies.keep_accounts(world.uow, [created])
    await world.uow.direct.pending_creates.begin(FIRM, "a-since", "req-since", created.event_id)
    await world.import_customers()
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)

    await reconcile_unfinished_creates(world.uow, world.quickbooks)

    assert await world.uow.direct.pending_creates.unfinished() == []
    assert world.uow.state.pending[(FIRM, "a-since")].create.customer_id == existing["Id"]
    assert await delink_account(world.uow, FIRM, "a-since", "customer made inactive")
    await reconcile_unfinished_creates(world.uow, world.quickbooks)
    assert world.links() == {}
    assert len(await world.customers_named("Linked Since Ltd")) == 1


async def test_a_name_quickbooks_refuses_6240_puts_the_account_up_for_attention(
    world: World,
) -> None:
    gone = await world.customer_in_quickbooks("Taken Name Inc")
    await world.emulator.admin.edit_customer_as_user(world.realm_id, gone["Id"], {"Active": False})
    created = event("a-taken", "Taken Name Inc")
    await copies.keep_accounts(world.uow, [created])

    outcome = await create_or_link(
        world.uow, world.quickbooks, FIRM, world.realm_id, "a-taken", created.event_id
    )

    assert outcome.outcome == "attention"
    assert "QuickBooks refused the customer" in (outcome.reason or "")
    assert world.attention("a-taken") == outcome.reason
    assert world.links() == {}
    assert world.uow.state.pending[(FIRM, "a-taken")].create.state == "failed"


class AnswersSeveral:
    """QuickBooks answering a name query with several customers (the emulator, like
    QuickBooks, keeps names unique, so the answer is scripted); the rest is the client."""

    def __init__(self, client: QuickBooksClient, answer: list[dict[str, Any]]) -> None:
        self._client = client
        self._answer = answer

    async def find_customers_by_name(self, realm_id: str, name: str) -> list[dict[str, Any]]:
        return self._answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


async def test_several_customers_with_the_name_put_the_account_up_for_attention(
    world: World,
) -> None:
    answer = [
        await world.customer_in_quickbooks("Twin Name"),
        await world.customer_in_quickbooks("Twin Name II"),
    ]
    created = event("a-twin", "twin name")
    await copies.keep_accounts(world.uow, [created])

    outcome = await create_or_link(
        world.uow,
        cast(CustomerGateway, AnswersSeveral(world.quickbooks, answer)),
        FIRM,
        world.realm_id,
        "a-twin",
        created.event_id,
    )

    assert outcome.outcome == "attention"
    assert world.attention("a-twin") == (
        "2 QuickBooks customers are named 'twin name': link one by hand"
    )
    assert world.links() == {}
    assert len(await world.emulator.admin.customers(world.realm_id)) == 2  # none created


async def test_delinking_removes_the_link_and_keeps_both_records(world: World) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)

    assert await delink_account(world.uow, FIRM, "a-acme", "delinked by a firm admin")
    assert not await delink_account(world.uow, FIRM, "a-acme", "again: nothing to remove")

    assert world.links() == {}
    assert link_events(world.uow)[-1] == ("link.removed", "a-acme", "delinked by a firm admin")
    assert (FIRM, "a-acme") in world.uow.state.accounts
    assert (await world.quickbooks_customer(acme["Id"]))["Active"] is True
    # the audit says who went and why
    removed = [e for e in world.uow.state.audit if e.action == "link.removed"]
    assert [(e.account_id, e.customer_id, e.reason) for e in removed] == [
        ("a-acme", acme["Id"], "delinked by a firm admin")
    ]


async def test_the_push_step_delinks_a_customer_made_inactive(world: World) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    await world.emulator.admin.edit_customer_as_user(world.realm_id, acme["Id"], {"Active": False})
    # the matcher's copy hears of it before the push step, which then finds nothing to do
    await world.import_customers()
    assert world.links() == {}
    assert link_events(world.uow)[-1] == (
        "link.removed",
        "a-acme",
        "customer made inactive in QuickBooks",
    )

    outcome = await push_firm(world.uow, world.quickbooks, FIRM, None)
    assert (outcome.delinked, outcome.synced.pairs) == (0, 0)


async def test_consecutive_updates_apply_only_the_last_and_mark_the_others(
    world: World,
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    start = datetime.now(UTC)
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd", at=start)])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None, noop)
    updates = [
        event(
            "a-acme",
            "Acme Ltd",
            kind="account.updated",
            phone=f"512-555-{n:04d}",
            at=start + timedelta(seconds=n),
        )
        for n in (1, 2, 3)
    ]
    before = len(await world.writes_seen())

    await handle_account_events(world.uow, world.quickbooks, updates)

    assert len(await world.writes_seen()) == before + 1  # one write: the last state
    stored = await world.quickbooks_customer(acme["Id"])
    assert stored["PrimaryPhone"]["FreeFormNumber"] == "512-555-0003"
    assert {(CONSUMER, u.event_id) for u in updates} <= world.uow.state.processed
    # redelivered: nothing more happens
    await handle_account_events(world.uow, world.quickbooks, updates)
    assert len(await world.writes_seen()) == before + 1


async def test_a_prospect_is_created_only_once_it_becomes_a_client(world: World) -> None:
    start = datetime.now(UTC)
    prospect = event("a-pro", "Maybe Later LLC", status="Prospect", at=start)
    await handle_account_events(world.uow, world.quickbooks, [prospect])
    assert await world.customers_named("Maybe Later LLC") == []
    assert world.links() == {}

    client = event(
        "a-pro",
        "Maybe Later LLC",
        kind="account.updated",
        status="Client",
        at=start + timedelta(seconds=1),
    )
    await handle_account_events(world.uow, world.quickbooks, [client])

    (customer,) = await world.customers_named("Maybe Later LLC")
    assert world.links() == {"a-pro": (customer["Id"], "created")}


async def test_an_archived_account_is_delinked_and_its_customer_stays(world: World) -> None:
    start = datetime.now(UTC)
    created = event("a-arc", "Archive Me Inc", at=start)
    await handle_account_events(world.uow, world.quickbooks, [created])
    (customer,) = await world.customers_named("Archive Me Inc")
    assert world.links() == {"a-arc": (customer["Id"], "created")}

    archived = event(
        "a-arc", "Archive Me Inc", kind="account.archived", at=start + timedelta(seconds=1)
    )
    await handle_account_events(world.uow, world.quickbooks, [archived])

    assert world.links() == {}
    assert link_events(world.uow)[-1] == ("link.removed", "a-arc", "account archived in Liscio")
    assert (await world.quickbooks_customer(customer["Id"]))["Active"] is True
    assert world.uow.state.accounts[(FIRM, "a-arc")].account.archived


async def test_every_transaction_that_calls_quickbooks_says_so(world: World) -> None:
    created = event("a-gate", "Gate Keeper Co")
    await handle_account_events(world.uow, world.quickbooks, [created])

    locked = [t for t in world.uow.opened if f"{FIRM}:a-gate" in t.locks]
    assert locked and all(t.committed for t in locked)
    assert any(t.calls_quickbooks for t in locked)


class RecordingProducer:
    """What the use case hands Kafka, kept in a list (Kafka itself: tests/integration)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    async def send(self, topic: str, key: str, value: Any) -> None:
        self.sent.append((topic, key, value))

    async def send_soon(self, topic: str, key: str, value: Any) -> None:
        self.sent.append((topic, key, value))

    async def flush(self) -> None:
        return None


async def test_the_cdc_mark_starts_at_first_sight_and_carries_each_round_on(
    world: World,
) -> None:
    producer = RecordingProducer()
    customer = await world.customer_in_quickbooks("Changes Often Inc")

    async def poll() -> int | None:
        return await poll_realm(
            world.uow, cast(Producer, producer), world.quickbooks, FIRM, world.realm_id
        )

    assert await poll() == 1  # first sight: the changes of the last day
    first_mark = world.uow.state.cdc_marks[world.realm_id]
    producer.sent.clear()
    await world.emulator.admin.edit_customer_as_user(
        world.realm_id, customer["Id"], {"PrimaryPhone": {"FreeFormNumber": "512-555-0909"}}
    )

    assert await poll() == 1
    (topic, key, value), *_ = producer.sent
    assert (topic, key) == (QBO_CUSTOMERS, f"{world.realm_id}:{customer['Id']}")
    record = CustomerRecord.model_validate_json(value)
    assert (record.phone, record.source) == ("512-555-0909", "cdc")
    second_mark = world.uow.state.cdc_marks[world.realm_id]
    assert second_mark > first_mark

    world.uow.polled_elsewhere.add(world.realm_id)  # another importer holds the realm
    await world.emulator.admin.edit_customer_as_user(
        world.realm_id, customer["Id"], {"PrimaryPhone": {"FreeFormNumber": "512-555-0910"}}
    )
    assert await poll() is None  # not this process's round
    assert world.uow.state.cdc_marks[world.realm_id] == second_mark
    assert len(producer.sent) == 1


def notice_of(realm_id: str, customer: dict[str, Any], **changed: Any) -> QboChangeNotice:
    return QboChangeNotice(
        realm_id=realm_id,
        entity="Customer",
        entity_id=customer["Id"],
        operation="Create",
        # Stamped to the millisecond as CloudEvents are: here the moment after the change
        # (MetaData's whole seconds would stand for the whole second: see `covered`).
        last_updated=datetime.now(UTC),
        received_at=datetime.now(UTC),
        **changed,
    )


async def test_a_burst_of_notifications_costs_one_cdc_call(world: World) -> None:
    """Issue 15: a burst of 100 webhook notifications of one realm is one CDC read that
    returns every changed customer, not one read per customer."""
    producer = RecordingProducer()
    assert (
        await poll_realm(
            world.uow, cast(Producer, producer), world.quickbooks, FIRM, world.realm_id
        )
        == 0
    )
    burst = [await world.customer_in_quickbooks(f"Burst Co {n:03d}") for n in range(100)]
    notices = [notice_of(world.realm_id, customer) for customer in burst]  # all delivered
    await world.emulator.admin.clear_requests(world.realm_id)

    ran = [
        await apply_change_notice(
            world.uow, cast(Producer, producer), world.quickbooks, notice, coalesce_seconds=0
        )
        for notice in notices
    ]

    requests = await world.emulator.admin.requests(world.realm_id)
    assert [entry["path"].rsplit("/", 1)[-1] for entry in requests] == ["cdc"]
    assert ran.count(True) == 1
    published = {key for topic, key, _ in producer.sent if topic == QBO_CUSTOMERS}
    assert published == {f"{world.realm_id}:{customer['Id']}" for customer in burst}


async def test_notifications_of_unknown_realms_and_unsynced_entities_cost_nothing(
    world: World,
) -> None:
    producer = RecordingProducer()
    customer = await world.customer_in_quickbooks("Somebody Else's Customer")
    ignored = metrics.WEBHOOK_CHANGES_IGNORED
    unknown, entity = ignored.labels("unknown_realm"), ignored.labels("entity")
    before = unknown._value.get(), entity._value.get()
    await world.emulator.admin.clear_requests()

    stranger = notice_of("realm-nobody-connected", customer)
    invoice = notice_of(world.realm_id, customer).model_copy(update={"entity": "Invoice"})
    for notice in (stranger, invoice):
        assert not await apply_change_notice(
            world.uow, cast(Producer, producer), world.quickbooks, notice, coalesce_seconds=0
        )

    assert (unknown._value.get(), entity._value.get()) == (before[0] + 1, before[1] + 1)
    assert await world.emulator.admin.requests() == []
    assert producer.sent == []


async def test_a_merge_notice_delinks_the_merged_away_customer_at_once(world: World) -> None:
    producer = RecordingProducer()
    await poll_realm(world.uow, cast(Producer, producer), world.quickbooks, FIRM, world.realm_id)
    kept = await world.customer_in_quickbooks("Merged Into Ltd")
    gone = await world.customer_in_quickbooks("Merged Away Ltd")
    await world.emulator.admin.merge_customers(world.realm_id, gone["Id"], kept["Id"])
    survivor = await world.quickbooks_customer(kept["Id"])

    await apply_change_notice(
        world.uow,
        cast(Producer, producer),
        world.quickbooks,
        notice_of(world.realm_id, survivor, deleted_id=gone["Id"]).model_copy(
            update={"operation": "Merge"}
        ),
        coalesce_seconds=0,
    )

    records = {
        key: CustomerRecord.model_validate_json(value) if isinstance(value, bytes) else value
        for topic, key, value in producer.sent
        if topic == QBO_CUSTOMERS
    }
    assert records[f"{world.realm_id}:{gone['Id']}"].deleted


async def test_a_run_is_matched_once_every_imported_customer_is_stored_then_pushed(
    world: World,
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd", **PHONE)
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    runs = world.uow.direct.runs
    run, created = await runs.open_or_join(FIRM, "request-1", "sync", datetime.now(UTC))
    assert created and await runs.claim_next("import") == replace(run, status="running")
    await runs.set_realm(run.run_id, world.realm_id)
    await runs.finish_step(run.run_id, "import", {"customers": 1})
    advancer = RunAdvancer(world.uow, world.quickbooks)

    await advancer.tick()  # the imported customer has not reached the matcher yet
    await advancer.close()
    assert world.links() == {}

    (customer,) = [c async for c in world.quickbooks.customers(world.realm_id)]
    record = customer_record(world.realm_id, customer, source="import", firm_id=FIRM)
    await copies.keep_customers(world.uow, [record.model_copy(update={"run_id": run.run_id})])
    await advancer.tick()
    await asyncio.wait_for(asyncio.gather(*advancer._working.values()), 10)

    assert world.links() == {"a-acme": (acme["Id"], "auto")}
    finished = world.uow.state.runs[run.run_id]
    assert finished.run.status == "done"
    assert finished.steps["match"].counts["linked"] == 1
    assert finished.steps["push"].counts["pairs"] == 1


async def test_the_advancer_exports_how_long_the_oldest_open_run_has_been_in_each_step(
    world: World,
) -> None:
    def age(step: str) -> float:
        value = REGISTRY.get_sample_value("qbsync_sync_run_oldest_step_seconds", {"step": step})
        assert value is not None
        return value

    runs = world.uow.direct.runs
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    run, _ = await runs.open_or_join(FIRM, "request-stuck", "sync", an_hour_ago)
    advancer = RunAdvancer(world.uow, world.quickbooks)

    await advancer.tick()  # no importer has claimed it for an hour: stuck in import
    assert age("import") >= 3600 and age("match") == 0

    await runs.claim_next("import")
    await runs.set_realm(run.run_id, world.realm_id)
    await runs.finish_step(run.run_id, "import", {"customers": 5})  # none reach the matcher
    await advancer.tick()
    await advancer.close()
    assert age("import") == 0 and 0 <= age("match") < 60
