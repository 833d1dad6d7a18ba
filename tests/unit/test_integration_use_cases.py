"""The integration page's use cases (qbsync/sync/integration.py) on the in-memory unit of
work and the real client against the in-process emulator."""

from __future__ import annotations

import copy
import json

import pytest

from qbsync.errors import Conflict, NotFound
from qbsync.kafka.topics import SYNC_REQUESTS
from qbsync.sync import copies, integration
from qbsync.sync.steps import match_firm, push_firm
from tests.support.memory_uow import MemoryUnitOfWork
from tests.unit.test_use_cases import FIRM, PHONE, World, event

pytest_plugins = ["tests.unit.test_use_cases"]


async def _firm_to_sync(world: World) -> None:
    await world.customer_in_quickbooks("Acme Ltd", **PHONE)
    await world.customer_in_quickbooks("Bolt Inc")
    await world.customer_in_quickbooks("Dup Co")
    await world.customer_in_quickbooks("Kept Co", **PHONE)
    await world.import_customers()
    await copies.keep_accounts(
        world.uow,
        [
            event("a-acme", "ACME LTD"),
            event("a-bolt", "bolt inc", website="https://bolt.example"),
            event("a-dup1", "Dup Co"),
            event("a-dup2", "DUP CO"),
            event("a-none", "Nobody Here"),
        ],
    )


async def test_a_dry_run_writes_nothing_and_foretells_what_sync_now_does(world: World) -> None:
    await _firm_to_sync(world)
    state_before = copy.deepcopy(world.uow.state)
    requests_before = await world.emulator.admin.requests(world.realm_id)

    foretold = await integration.dry_run(world.uow, FIRM)

    # Nothing written anywhere: no transaction, no message, no QuickBooks request.
    assert world.uow.opened == []
    assert world.uow.state == state_before
    assert await world.emulator.admin.requests(world.realm_id) == requests_before
    assert [(a.folded_name, a.account_ids) for a in foretold.ambiguous] == [
        ("dup co", ("a-dup1", "a-dup2"))
    ]
    writes = {(w.account_id, w.side, w.field, w.old, w.new) for w in foretold.writes}
    assert writes == {
        ("a-acme", "liscio", "phone", None, "512-555-0101"),
        ("a-bolt", "quickbooks", "website", None, "https://bolt.example"),
    }

    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, "run-1")
    await push_firm(world.uow, world.quickbooks, FIRM, "run-1")
    made = {(a, c) for a, (c, _) in world.links().items()}
    assert made == set(foretold.links)
    done = {
        (e.account_id, e.side, e.field, e.old_value, e.new_value)
        for e in world.uow.state.audit
        if e.action == "field.written"
    }
    assert done == writes
    # After the sync, nothing is left to do.
    again = await integration.dry_run(world.uow, FIRM)
    assert (again.links, again.writes) == ([], [])


async def test_sync_now_joins_the_open_run_and_sends_its_request() -> None:
    uow = MemoryUnitOfWork()
    with pytest.raises(Conflict):
        await integration.request_sync(uow, FIRM)
    uow.connect(FIRM, "realm-1")
    first = await integration.request_sync(uow, FIRM)
    second = await integration.request_sync(uow, FIRM)
    assert first["run_id"] == second["run_id"]
    assert set(first["steps"]) == {"import", "match", "push"}
    requests = [json.loads(value) for _, value in uow.messages(SYNC_REQUESTS)]
    assert len(requests) == 2
    assert all(r["firm_id"] == FIRM and r["kind"] == "sync" for r in requests)
    (run,) = uow.state.runs.values()
    assert run.request_ids == [r["request_id"] for r in requests]
    assert await integration.run_of_firm(uow, FIRM, first["run_id"]) == second
    with pytest.raises(NotFound):
        await integration.run_of_firm(uow, "another-firm", first["run_id"])
    uow.connect(FIRM, "realm-1", status="needs_reconnect")
    with pytest.raises(Conflict):
        await integration.request_sync(uow, FIRM)


class Revoker:
    def __init__(self) -> None:
        self.revoked: list[str] = []

    async def revoke(self, realm_id: str) -> None:
        self.revoked.append(realm_id)


async def test_disconnecting_revokes_and_forgets_the_connection_and_keeps_records(
    world: World,
) -> None:
    await _firm_to_sync(world)
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, "run-1")
    links = dict(world.uow.state.links)
    revoker = Revoker()
    assert await integration.disconnect(world.uow, revoker, FIRM) == world.realm_id
    assert revoker.revoked == [world.realm_id]
    assert FIRM not in world.uow.state.connections
    assert world.uow.state.links == links
    overview = await integration.overview(world.uow, FIRM)
    assert overview.connection is None
    assert overview.counts["linked"] == 2  # its links and records stay listed
    with pytest.raises(Conflict):
        await integration.disconnect(world.uow, revoker, FIRM)


async def test_records_pages_cover_every_item_once_and_counts_match(world: World) -> None:
    await _firm_to_sync(world)
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, "run-1")
    whole = await integration.records_page(world.uow, FIRM, "all", None, None, 500)
    assert whole.next_after is None
    keys = [i.key for i in whole.items]
    assert keys == sorted(keys)
    paged, after = [], None
    while True:
        page = await integration.records_page(world.uow, FIRM, "all", None, after, 2)
        paged += page.items
        if page.next_after is None:
            break
        after = page.next_after
    assert paged == whole.items
    overview = await integration.overview(world.uow, FIRM)
    for name, count in overview.counts.items():
        listed = await integration.records_page(world.uow, FIRM, name, None, None, 500)  # type: ignore[arg-type]
        assert len(listed.items) == count, name
    assert overview.counts["ambiguous"] == 3  # two accounts and the customer named Dup Co
