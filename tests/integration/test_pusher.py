"""The pusher end to end: Liscio account events become QuickBooks customer writes,
exactly once in effect (issue 5)."""

from __future__ import annotations

import asyncio
import json

from qbsync.demo.liscio import LiscioAccount, account_event
from qbsync.kafka.topics import ACCOUNT_EVENTS, dlq_of
from tests.conftest import unique
from tests.integration.system import Firm, System, find, start_services
from tests.integration.test_sync_now import processed_by_pusher
from tests.support.kafka import read_topic
from tests.support.polling import eventually

ADDRESS = {
    "line1": "1 Main St",
    "line2": None,
    "city": "Austin",
    "state": "TX",
    "postal_code": "78701",
    "country": "US",
}


async def wait_link(firm: Firm, account_id: str, timeout: float = 30) -> dict[str, object]:
    async def linked() -> dict[str, object] | None:
        return await firm.link_of(account_id)

    return await eventually(linked, timeout=timeout, what=f"{account_id} linked")


async def test_a_new_client_account_is_created_in_quickbooks_and_linked(system: System) -> None:
    firm = await system.new_firm()
    account = LiscioAccount(
        "a-new",
        "Brand New LLC",
        address=ADDRESS,
        phone="512-555-0100",
        website="https://new.example",
    )
    await firm.liscio.create(account)
    link = await wait_link(firm, "a-new")
    assert link["how"] == "created"
    customer = await firm.customer(str(link["customer_id"]))
    assert customer["DisplayName"] == "Brand New LLC"
    assert customer["BillAddr"]["Line1"] == "1 Main St"
    assert customer["BillAddr"]["CountrySubDivisionCode"] == "TX"
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "512-555-0100"
    assert customer["WebAddr"]["URI"] == "https://new.example"
    assert len(await firm.writes()) == 1
    events = await eventually(firm.link_events, what="link event")
    assert find(events, type="link.created", account_id="a-new", how="created")


async def test_a_name_that_exists_in_another_case_is_linked_not_created(system: System) -> None:
    firm = await system.new_firm({"name": "CASE STUDY CO", "PrimaryPhone": {"FreeFormNumber": "1"}})
    await firm.liscio.create(LiscioAccount("a-case", "Case Study Co", website="https://c.example"))
    link = await wait_link(firm, "a-case")
    assert link["how"] == "auto"
    assert len(await firm.customers_named("case study co")) == 1
    customer = await firm.customer(str(link["customer_id"]))
    assert customer["DisplayName"] == "CASE STUDY CO"  # names are never written
    assert customer["WebAddr"]["URI"] == "https://c.example"  # first sync: Liscio-only value
    commands = await eventually(firm.commands, what="fill command")
    assert [c["fields"] for c in commands] == [{"phone": "1"}]  # first sync: QuickBooks-only


async def test_prospects_wait_until_they_become_clients(system: System) -> None:
    firm = await system.new_firm()
    created = await firm.liscio.create(LiscioAccount("a-p", "Maybe Later LLC", status="PROSPECT"))
    await eventually(lambda: processed_by_pusher(system, [created.event_id]), what="handled")
    assert await firm.link_of("a-p") is None
    assert await firm.writes() == []
    await firm.liscio.update("a-p", status="Client")
    link = await wait_link(firm, "a-p")
    assert link["how"] == "created"


async def test_an_updated_account_never_created_by_us_waits_for_sync_now(system: System) -> None:
    firm = await system.new_firm()
    updated = await firm.liscio.publish(LiscioAccount("a-w", "Waiting Co"), "account.updated")
    await eventually(lambda: processed_by_pusher(system, [updated.event_id]), what="handled")
    assert await firm.link_of("a-w") is None
    assert await firm.writes() == []
    name = await system.pool.fetchval(
        "SELECT name FROM accounts WHERE firm_id = $1 AND account_id = 'a-w'", firm.firm_id
    )
    assert name == "Waiting Co"


async def test_updates_flow_and_unchanged_fields_make_no_call(system: System) -> None:
    firm = await system.new_firm()
    await firm.liscio.create(LiscioAccount("a-u", "Updates Inc", phone="1"))
    link = await wait_link(firm, "a-u")
    await firm.liscio.update("a-u", phone="2", name="Updates Incorporated")
    second = await firm.liscio.update(
        "a-u", contacts=[{"id": "c1", "first_name": "Ada", "last_name": "L", "email": "a@x"}]
    )
    await eventually(lambda: processed_by_pusher(system, [second.event_id]), what="handled")
    customer = await firm.customer(str(link["customer_id"]))
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "2"
    assert customer["DisplayName"] == "Updates Inc"
    assert len(await firm.writes()) == 2  # the create and the phone; not the contacts change


async def test_the_same_event_three_times_has_one_effect(system: System) -> None:
    firm = await system.new_firm()
    event = account_event(firm.firm_id, LiscioAccount("a-3", "Thrice LLC"), "account.created")
    for _ in range(3):
        await system.producer.send(ACCOUNT_EVENTS, f"{firm.firm_id}:a-3", event)
    await wait_link(firm, "a-3")
    later = await firm.liscio.publish(LiscioAccount("a-3", "Thrice LLC", phone="9"))
    await eventually(lambda: processed_by_pusher(system, [later.event_id]), what="handled")
    assert len(await firm.customers_named("Thrice LLC")) == 1
    assert len(await firm.writes()) == 2  # one create, one update


async def test_events_in_quick_succession_end_in_the_latest_state(system: System) -> None:
    firm = await system.new_firm()
    await firm.liscio.create(LiscioAccount("a-q", "Quick LLC", phone="0"))
    link = await wait_link(firm, "a-q")
    last = None
    for phone in ("1", "2", "3", "4", "5"):
        last = await firm.liscio.update("a-q", phone=phone)
    assert last is not None
    await eventually(lambda: processed_by_pusher(system, [last.event_id]), what="handled")
    customer = await firm.customer(str(link["customer_id"]))
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "5"


async def test_archiving_delinks_and_the_customer_stays(system: System) -> None:
    firm = await system.new_firm()
    await firm.liscio.create(LiscioAccount("a-x", "Archive Me LLC"))
    link = await wait_link(firm, "a-x")
    archived = await firm.liscio.archive("a-x")
    await eventually(lambda: processed_by_pusher(system, [archived.event_id]), what="handled")
    assert await firm.link_of("a-x") is None
    assert (await firm.customer(str(link["customer_id"])))["Active"] is True
    removed = find(await firm.link_events(), type="link.removed", account_id="a-x")
    assert removed[0]["reason"] == "account archived in Liscio"


async def test_a_name_quickbooks_refuses_puts_the_account_up_for_attention(system: System) -> None:
    firm = await system.new_firm({"name": "Held By Inactive", "Active": False})
    created = await firm.liscio.create(LiscioAccount("a-h", "held by inactive"))
    await eventually(lambda: processed_by_pusher(system, [created.event_id]), what="handled")
    listing = await firm.links()
    assert listing["links"] == []
    (attention,) = listing["attention"]
    assert attention["account_id"] == "a-h"
    assert "refused" in attention["reason"]
    # Not retried forever: the partition moved on, later events are handled.
    after = await firm.liscio.create(LiscioAccount("a-ok", "Fine Name LLC"))
    await eventually(lambda: processed_by_pusher(system, [after.event_id]), what="next handled")


async def test_bursts_of_429_and_5xx_lose_and_duplicate_nothing(system: System) -> None:
    firm = await system.new_firm()
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0.4)
    await system.admin.set_limits(firm.realm_id, max_requests_per_window=8, window_seconds=2)
    names = [f"Burst {i} LLC" for i in range(12)]
    for i, name in enumerate(names):
        await firm.liscio.create(LiscioAccount(f"a-b{i}", name, phone=str(i)))
    for i in range(12):
        await wait_link(firm, f"a-b{i}", timeout=120)
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0.0)
    statuses = {r["status"] for r in await system.admin.requests(firm.realm_id)}
    assert {429, 500} <= statuses  # the bursts happened
    for i, name in enumerate(names):
        (customer,) = await firm.customers_named(name)
        assert customer["PrimaryPhone"]["FreeFormNumber"] == str(i)


async def test_a_firms_accounts_updated_at_once_are_each_written_once(system: System) -> None:
    # The pusher applies a firm's ready accounts together; with 5xx answers some of those
    # shared transactions fail and each account is applied again on its own.
    firm = await system.new_firm()
    ids = [f"a-t{i}" for i in range(20)]
    for i, account_id in enumerate(ids):
        await firm.liscio.create(LiscioAccount(account_id, f"Together {i} LLC", phone="0"))
    links = {account_id: await wait_link(firm, account_id, timeout=60) for account_id in ids}
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0.4)
    updates = [await firm.liscio.update(account_id, phone="1") for account_id in ids]
    await eventually(
        lambda: processed_by_pusher(system, [u.event_id for u in updates]),
        timeout=120,
        what="updates handled",
    )
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0.0)
    for account_id, link in links.items():
        customer = await firm.customer(str(link["customer_id"]))
        assert customer["PrimaryPhone"]["FreeFormNumber"] == "1", account_id
    assert len(await firm.writes()) == 2 * len(ids)  # one create and one update each


async def test_a_pusher_killed_between_the_call_and_the_commit_creates_once(system: System) -> None:
    firm = await system.new_firm()
    # The emulator applies the create, then holds the answer: the pusher dies waiting.
    await system.admin.set_faults(firm.realm_id, slow_rate=1.0, slow_ms=20000)
    created = await firm.liscio.create(LiscioAccount("a-k", "Killed Midway LLC", phone="1"))
    await eventually(lambda: firm.customers_named("Killed Midway LLC"), what="create applied")
    system.processes["pusher"].kill()
    await system.admin.set_faults(firm.realm_id, slow_rate=0.0)
    system.processes["pusher"] = start_services(system.env, ("services.pusher",))["pusher"]

    link = await wait_link(firm, "a-k", timeout=60)
    assert link["how"] == "created"
    assert len(await firm.customers_named("Killed Midway LLC")) == 1
    await eventually(lambda: processed_by_pusher(system, [created.event_id]), what="handled")
    # The held answer is logged when its 20 s are over, which can be after the restarted
    # pusher is done (a dead member leaves the group after 10 s).
    writes = await eventually(firm.writes, timeout=40, what="the held create logged")
    assert len(writes) == 1  # the retry was answered from QuickBooks' requestid memory
    replays = [
        r for r in await system.admin.requests(firm.realm_id) if "replayed" in r["operation"]
    ]
    assert len(replays) == 1
    assert json.dumps(link)  # the link is reported like any other
    await asyncio.sleep(0)


async def test_a_pusher_restarted_while_quickbooks_fails_finishes_its_create_later(
    system: System,
) -> None:
    firm = await system.new_firm()
    stored = await firm.liscio.publish(LiscioAccount("a-r", "Reconciled Later LLC"))
    await eventually(lambda: processed_by_pusher(system, [stored.event_id]), what="stored")
    # A pusher that recorded this account's create and died before calling QuickBooks:
    assert system.processes["pusher"].stop() == 0
    await system.pool.execute(
        "INSERT INTO pending_creates (firm_id, account_id, request_id) VALUES ($1, 'a-r', $2)",
        firm.firm_id,
        unique("request"),
    )
    # ... restarted while QuickBooks fails every request: it cannot finish that create yet.
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=1.0)
    pusher = start_services(system.env, ("services.pusher",))["pusher"]
    system.processes["pusher"] = pusher

    async def reconciliation_failed() -> bool:
        assert pusher.process.poll() is None, pusher.output()[-3000:]
        return "reconciling unfinished creates failed" in pusher.output()

    await eventually(reconciliation_failed, timeout=60, what="reconciliation failed once")
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0.0)
    link = await wait_link(firm, "a-r", timeout=90)
    assert link["how"] == "created"
    assert len(await firm.customers_named("Reconciled Later LLC")) == 1
    assert pusher.process.poll() is None


async def test_a_pusher_stopped_during_a_create_finishes_it_and_commits_its_event(
    system: System,
) -> None:
    firm = await system.new_firm()
    # The emulator applies the create, then holds the answer for 2 s: the pusher is told
    # to stop while it waits, and has a few seconds to finish what is under way.
    await system.admin.set_faults(firm.realm_id, slow_rate=1.0, slow_ms=2000)
    await firm.liscio.create(LiscioAccount("a-t", "Stopped Midway LLC"))
    await eventually(lambda: firm.customers_named("Stopped Midway LLC"), what="create applied")
    try:
        assert system.processes["pusher"].stop() == 0
        link = await firm.link_of("a-t")
        assert link is not None and link["how"] == "created"
        # Its event was committed before the pusher left: it does not come again.
        assert await uncommitted_account_events(system) == 0
    finally:
        await system.admin.set_faults(firm.realm_id, slow_rate=0.0)
        system.processes["pusher"] = start_services(system.env, ("services.pusher",))["pusher"]


async def test_connections_dropped_by_the_database_mid_update_lose_nothing(
    system: System,
) -> None:
    firm = await system.new_firm()
    await firm.liscio.create(LiscioAccount("a-db", "Database Blip LLC", phone="1"))
    link = await wait_link(firm, "a-db")
    # The emulator applies the update, then holds the answer: meanwhile PostgreSQL drops
    # the pusher's connections, the one holding the update's transaction among them.
    await system.admin.set_faults(firm.realm_id, slow_rate=1.0, slow_ms=2000)
    update = await firm.liscio.update("a-db", phone="2")
    customer_id = str(link["customer_id"])
    await eventually(lambda: phone_is(firm, customer_id, "2"), what="update applied")
    dropped = await system.pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'qbsync-pusher' AND datname = current_database()"
    )
    assert dropped >= 1
    await system.admin.set_faults(firm.realm_id, slow_rate=0.0)
    # Applied again once the database answers, not dead-lettered.
    await eventually(lambda: processed_by_pusher(system, [update.event_id]), what="handled")
    assert await phone_is(firm, customer_id, "2")
    letters = await read_topic(
        system.bootstrap, system.prefix + dlq_of(ACCOUNT_EVENTS), expect=10**6, timeout=2
    )
    assert not [key for key, _ in letters if key.startswith(f"{firm.firm_id}:")]


async def phone_is(firm: Firm, customer_id: str, phone: str) -> bool:
    customer = await firm.customer(customer_id)
    return bool(customer["PrimaryPhone"]["FreeFormNumber"] == phone)


async def uncommitted_account_events(system: System) -> int:
    report = await system.cli_json("lag", "--json", "--sample-seconds", "0")
    group = next(g for g in report["groups"] if g["group"] == f"{system.prefix}qbsync-pusher")
    topic = system.prefix + ACCOUNT_EVENTS
    return sum(row["lag"] for row in group["partitions"] if row["topic"] == topic)


async def test_random_redeliveries_while_updates_wait_end_in_the_last_state(
    system: System,
) -> None:
    """Issue 11, defect 2: while each account's first update is being written (QuickBooks
    holds the answers), its later updates wait, and Liscio redelivers events at random,
    soon or late, the newest too. Every customer ends in its account's last state."""
    rng = __import__("random").Random(113)
    firm = await system.new_firm()
    accounts = [f"a-r{n}" for n in range(6)]
    links = {}
    for account_id in accounts:
        await firm.liscio.create(LiscioAccount(account_id, f"Redelivered {account_id}"))
    for account_id in accounts:
        links[account_id] = await wait_link(firm, account_id)

    await system.admin.set_faults(firm.realm_id, latency_ms=400)  # updates wait behind
    sent = []
    for round_ in range(1, 6):
        for account_id in accounts:
            event = await firm.liscio.update(account_id, phone=f"512-555-{round_:04d}")
            sent.append(event)
            for again in rng.sample(sent, k=rng.randint(0, 2)):  # redeliveries
                key = f"{firm.firm_id}:{again.account.id}"
                await system.producer.send(ACCOUNT_EVENTS, key, again)
    newest = sent[-len(accounts) :]
    for event in newest:  # the newest of each account, once more, after all the others
        await system.producer.send(ACCOUNT_EVENTS, f"{firm.firm_id}:{event.account.id}", event)
    await eventually(
        lambda: processed_by_pusher(system, [e.event_id for e in newest]),
        timeout=60,
        what="the newest events handled",
    )
    await system.admin.set_faults(firm.realm_id, latency_ms=0)

    phones = {
        account_id: (await firm.customer(str(link["customer_id"])))["PrimaryPhone"][
            "FreeFormNumber"
        ]
        for account_id, link in links.items()
    }
    assert phones == dict.fromkeys(accounts, "512-555-0005")
