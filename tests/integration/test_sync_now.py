"""Sync Now end to end: importer, matcher and the CLI on the real broker, database and
the QuickBooks emulator (issue 4)."""

from __future__ import annotations

import asyncio
import os
import re

import httpx

from qbsync.crypto import TokenCipher
from qbsync.demo.liscio import LiscioAccount
from tests.integration.system import QBSYNC, System, find, start_services
from tests.support.polling import eventually
from tests.support.stack import REPO
from tests.support.terminal import read_available, start_in_terminal

ADDRESS_QBO = {"Line1": "9 Elm Rd", "City": "Dallas", "CountrySubDivisionCode": "TX"}
ADDRESS_LISCIO = {"line1": "1 Main St", "city": "Austin", "state": "TX"}


async def test_sync_wait_on_a_terminal_draws_the_three_steps_and_their_counts_live(
    system: System,
) -> None:
    firm = await system.new_firm({"name": "Live One"}, {"name": "Live Two"}, {"name": "Other"})
    # Prospects: the pusher leaves them alone, so Sync Now is what links them.
    await firm.liscio.create(LiscioAccount("a-one", "live one", status="Prospect"))
    await firm.liscio.create(LiscioAccount("a-two", "LIVE TWO", status="Prospect"))
    await eventually(lambda: accounts_stored(system, firm.firm_id, 2), what="accounts stored")
    # A terminal, so rich draws live.
    process, leader = await start_in_terminal(
        [QBSYNC, "sync", "--firm", firm.firm_id, "--wait"], system.env, REPO
    )
    screen = b""

    async def ended() -> bool:
        nonlocal screen
        screen += await asyncio.to_thread(read_available, leader)
        return process.returncode is not None

    try:
        await eventually(ended, timeout=120, what="sync --wait ended")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert process.returncode == 0, text
    assert b"\x1b[1A" in screen  # redrawn in place (the cursor goes up over the last table)
    assert text.count(f"of firm {firm.firm_id}") >= 2, text  # more than one frame drawn
    assert f"of firm {firm.firm_id}: done" in text
    for step in ("import", "match", "push"):
        assert step in text
    assert "customers 3" in text and "linked 2" in text, text  # the steps' counts
    assert "{" not in text  # no JSON: that is --json's (one document, tested by firm.sync())


async def test_sync_now_links_names_equal_ignoring_case(system: System) -> None:
    firm = await system.new_firm(
        {"name": "ACME Tax LLC"},
        {"name": "beta co"},
        {"name": "Gamma Partners", "Active": False},
        {"name": "Epsilon Advisors."},
    )
    parent = await firm.add_customer("Zeta Holdings")
    await firm.add_customer("Zeta Job", Job=True, ParentRef={"value": parent})
    accounts = {
        "a-acme": "Acme Tax LLC",
        "a-beta": "Beta Co",
        "a-gamma": "Gamma Partners",
        "a-eps": "Epsilon Advisors",
        "a-job": "zeta job",
        "a-none": "Nobody In QuickBooks",
    }
    for account_id, name in accounts.items():
        await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect"))

    report = await firm.sync()

    assert report["status"] == "done", report
    assert {s: report["steps"][s]["status"] for s in ("import", "match", "push")} == {
        "import": "done",
        "match": "done",
        "push": "done",
    }
    assert report["steps"]["import"]["counts"]["customers"] == 6
    assert report["steps"]["match"]["counts"]["linked"] == 2
    links = {link["account_id"]: link for link in (await firm.links())["links"]}
    assert set(links) == {"a-acme", "a-beta"}
    assert {link["how"] for link in links.values()} == {"auto"}
    # Inactive customers are deleted ones; names are compared exactly after casefold; a
    # sub-customer is a job, never linked automatically.
    events = await firm.link_events()
    assert sorted(e["account_id"] for e in find(events, type="link.created")) == [
        "a-acme",
        "a-beta",
    ]


def qbo_fields(
    address: dict[str, str] | None, phone: str | None, web: str | None
) -> dict[str, object]:
    fields: dict[str, object] = {}
    if address:
        fields["BillAddr"] = address
    if phone:
        fields["PrimaryPhone"] = {"FreeFormNumber": phone}
    if web:
        fields["WebAddr"] = {"URI": web}
    return fields


def synced_of(customer: dict[str, object]) -> tuple[object, object, object]:
    address = customer.get("BillAddr") or {}
    assert isinstance(address, dict)
    parts = {
        k: address.get(k) for k in ("Line1", "City", "CountrySubDivisionCode") if address.get(k)
    }
    return (
        parts or None,
        (customer.get("PrimaryPhone") or {}).get("FreeFormNumber"),  # type: ignore[union-attr]
        (customer.get("WebAddr") or {}).get("URI"),  # type: ignore[union-attr]
    )


async def accounts_stored(system: System, firm_id: str, count: int) -> bool:
    stored = await system.pool.fetchval("SELECT count(*) FROM accounts WHERE firm_id = $1", firm_id)
    return bool(stored == count)


async def processed_by_pusher(system: System, event_ids: list[str]) -> bool:
    done = await system.pool.fetchval(
        "SELECT count(*) FROM processed_messages"
        " WHERE consumer = 'pusher' AND message_id = ANY($1)",
        event_ids,
    )
    return bool(done == len(event_ids))


async def test_first_sync_field_by_field(system: System) -> None:
    firm = await system.new_firm()
    cases = {
        # name: (Liscio address, phone, website), (QuickBooks address, phone, website)
        "Liscio Only": ((ADDRESS_LISCIO, "512-1", "https://l.example"), (None, None, None)),
        "QuickBooks Only": ((None, None, None), (ADDRESS_QBO, "214-2", "https://q.example")),
        "Both Differ": (
            (ADDRESS_LISCIO, "512-3", "https://l3.example"),
            (ADDRESS_QBO, "214-3", "https://q3.example"),
        ),
        "Both Equal": (
            ({"line1": "9 Elm Rd", "city": "Dallas", "state": "TX"}, "214-4", "https://e.example"),
            (ADDRESS_QBO, "214-4", "https://e.example"),
        ),
        "Neither": ((None, None, None), (None, None, None)),
        "Mixed": (
            (ADDRESS_LISCIO, None, "https://l6.example"),
            (None, "214-6", "https://q6.example"),
        ),
    }
    customer_ids = {}
    for index, (name, (ours, theirs)) in enumerate(cases.items()):
        customer_ids[name] = await firm.add_customer(name, **qbo_fields(*theirs))
        await firm.liscio.create(
            LiscioAccount(
                f"a{index}",
                name,
                status="Prospect",
                address=ours[0],
                phone=ours[1],
                website=ours[2],
            )
        )

    report = await firm.sync()
    assert report["status"] == "done", report
    assert report["steps"]["match"]["counts"]["linked"] == len(cases)

    after = {name: synced_of(await firm.customer(cid)) for name, cid in customer_ids.items()}
    liscio_addr_in_qbo = {"Line1": "1 Main St", "City": "Austin", "CountrySubDivisionCode": "TX"}
    assert after["Liscio Only"] == (liscio_addr_in_qbo, "512-1", "https://l.example")
    assert after["QuickBooks Only"] == (ADDRESS_QBO, "214-2", "https://q.example")
    assert after["Both Differ"] == (liscio_addr_in_qbo, "512-3", "https://l3.example")
    assert after["Both Equal"] == (ADDRESS_QBO, "214-4", "https://e.example")
    assert after["Neither"] == (None, None, None)
    assert after["Mixed"] == (liscio_addr_in_qbo, "214-6", "https://l6.example")

    # Values only in QuickBooks are copied to Liscio as fill_fields commands, nothing else is.
    commands = await eventually(firm.commands, what="fill_fields commands")
    by_account = {c["account_id"]: c for c in commands}
    assert set(by_account) == {"a1", "a5"}
    assert by_account["a1"]["type"] == "account.fill_fields"
    assert by_account["a1"]["fields"] == {
        "address": {
            "line1": "9 Elm Rd",
            "line2": None,
            "city": "Dallas",
            "state": "TX",
            "postal_code": None,
            "country": None,
        },
        "phone": "214-2",
        "website": "https://q.example",
    }
    assert by_account["a1"]["source"] == {
        "realm_id": firm.realm_id,
        "customer_id": customer_ids["QuickBooks Only"],
    }
    assert by_account["a5"]["fields"] == {"phone": "214-6"}

    # One write per pair that needed one (Liscio Only, Both Differ, Mixed), even after
    # Liscio applied the fills and announced them (the pusher finds nothing to write).
    await eventually(
        lambda: asyncio.sleep(0, result=len(firm.liscio.commands) == 2), what="fills applied"
    )
    fills_announced = [e.event_id for e in firm.liscio.published[-2:]]
    await eventually(lambda: processed_by_pusher(system, fills_announced), what="fills pushed")
    assert len(await firm.writes()) == 3

    audit = await system.pool.fetch(
        "SELECT account_id, side, field, new_value, reason FROM audit_log"
        " WHERE firm_id = $1 AND action = 'field.written' ORDER BY account_id, field",
        firm.firm_id,
    )
    assert {(r["account_id"], r["side"], r["field"]) for r in audit} == {
        ("a0", "quickbooks", "address"),
        ("a0", "quickbooks", "phone"),
        ("a0", "quickbooks", "website"),
        ("a1", "liscio", "address"),
        ("a1", "liscio", "phone"),
        ("a1", "liscio", "website"),
        ("a2", "quickbooks", "address"),
        ("a2", "quickbooks", "phone"),
        ("a2", "quickbooks", "website"),
        ("a5", "quickbooks", "address"),
        ("a5", "liscio", "phone"),
        ("a5", "quickbooks", "website"),
    }
    assert all("first sync" in r["reason"] for r in audit)


async def latest_run(system: System, firm_id: str, kind: str) -> dict[str, object] | None:
    run_id = await system.pool.fetchval(
        "SELECT run_id FROM sync_runs"
        " WHERE firm_id = $1 AND kind = $2 AND status IN ('done', 'failed')"
        " ORDER BY requested_at DESC LIMIT 1",
        firm_id,
        kind,
    )
    return {"run_id": str(run_id)} if run_id else None


async def test_subsequent_syncs_and_an_unchanged_replay(system: System) -> None:
    firm = await system.new_firm()
    equal = {"address": ADDRESS_LISCIO, "phone": "512-7", "website": "https://s.example"}
    cid = await firm.add_customer(
        "Subsequent LLC",
        **qbo_fields(
            {"Line1": "1 Main St", "City": "Austin", "CountrySubDivisionCode": "TX"},
            "512-7",
            "https://s.example",
        ),
    )
    await firm.liscio.create(LiscioAccount("a-s", "Subsequent LLC", status="Prospect", **equal))
    first = await firm.sync()
    assert first["steps"]["match"]["counts"]["linked"] == 1
    assert await firm.writes() == []  # equal values: no call at all

    # A QuickBooks user changes the phone (both sides have one: Liscio's wins again) and
    # clears the website (only Liscio has one: written back).
    await system.admin.edit_customer_as_user(
        firm.realm_id, cid, {"PrimaryPhone": {"FreeFormNumber": "999"}, "WebAddr": None}
    )
    # Liscio drops its address: the value is now only in QuickBooks, nothing changes.
    removed = await firm.liscio.update("a-s", address=None)
    await eventually(lambda: processed_by_pusher(system, [removed.event_id]), what="update pushed")
    second = await firm.sync()
    assert second["status"] == "done", second
    # Liscio's values go back in one write: the pusher's, if the QuickBooks edit reached our
    # copy (webhook, CDC) before it applied the Liscio update, else the push step's.
    pushed = second["steps"]["push"]["counts"]["quickbooks_writes"]
    assert pushed in (0, 1)
    customer = await firm.customer(cid)
    assert synced_of(customer) == (
        {"Line1": "1 Main St", "City": "Austin", "CountrySubDivisionCode": "TX"},
        "512-7",
        "https://s.example",
    )
    assert await firm.commands() == []  # QuickBooks changes never reach Liscio
    writes = len(await firm.writes())
    assert writes == 1

    # A replay of the unchanged firm: zero QuickBooks writes and no commands.
    await system.cli("replay", "--firm", firm.firm_id)
    replay = await eventually(
        lambda: latest_run(system, firm.firm_id, "replay"), timeout=60, what="replay done"
    )
    status = await system.pool.fetchval(
        "SELECT status FROM sync_runs WHERE run_id = $1",
        __import__("uuid").UUID(str(replay["run_id"])),
    )
    assert status == "done"
    assert len(await firm.writes()) == writes
    assert await firm.commands() == []


async def test_ambiguous_names_link_nothing_and_are_listed(system: System) -> None:
    firm = await system.new_firm(
        {"name": "Twin Partners"}, {"name": "Solo Co"}, {"name": "Dup Co"}, {"name": "Dup Co 2"}
    )
    for account_id, name in (("a1", "Twin Partners"), ("a2", "TWIN PARTNERS"), ("a3", "Solo Co")):
        await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect"))
    report = await firm.sync()
    assert report["steps"]["match"]["counts"] == report["steps"]["match"]["counts"] | {
        "linked": 1,
        "ambiguous": 1,
    }
    listing = await firm.links()
    assert [link["account_id"] for link in listing["links"]] == ["a3"]
    (ambiguous,) = listing["ambiguous"]
    assert ambiguous["name"] == "twin partners"
    assert ambiguous["account_ids"] == ["a1", "a2"]
    assert len(ambiguous["customer_ids"]) == 1


async def test_renames_never_delink_and_names_are_never_written(system: System) -> None:
    firm = await system.new_firm()
    cid = await firm.add_customer("Rename Me Inc", **qbo_fields(None, "1", None))
    await firm.liscio.create(LiscioAccount("a-r", "Rename Me Inc", status="Prospect", phone="1"))
    await firm.sync()
    await system.admin.edit_customer_as_user(
        firm.realm_id, cid, {"DisplayName": "Renamed In QuickBooks"}
    )
    renamed = await firm.liscio.update("a-r", name="Renamed In Liscio", phone="2")
    await eventually(lambda: processed_by_pusher(system, [renamed.event_id]), what="rename pushed")
    report = await firm.sync()
    assert report["status"] == "done"
    assert await firm.link_of("a-r") is not None
    customer = await firm.customer(cid)
    assert customer["DisplayName"] == "Renamed In QuickBooks"
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "2"


async def test_inactive_and_merged_customers_and_archived_accounts_are_delinked(
    system: System,
) -> None:
    firm = await system.new_firm(
        {"name": "Goes Inactive"},
        {"name": "Merged Away"},
        {"name": "Survivor"},
        {"name": "Archived Client"},
    )
    for account_id, name in (
        ("a-i", "Goes Inactive"),
        ("a-m", "Merged Away"),
        ("a-s", "Survivor"),
        ("a-x", "Archived Client"),
    ):
        await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect"))
    await firm.sync()
    assert len((await firm.links())["links"]) == 4
    inactive = (await firm.customers_named("Goes Inactive"))[0]["Id"]
    merged = (await firm.customers_named("Merged Away"))[0]["Id"]
    survivor = (await firm.customers_named("Survivor"))[0]["Id"]
    archived_customer = (await firm.customers_named("Archived Client"))[0]["Id"]
    await system.admin.edit_customer_as_user(firm.realm_id, inactive, {"Active": False})
    await system.admin.merge_customers(firm.realm_id, merged, survivor)
    await firm.liscio.archive("a-x")

    # Webhooks and CDC bring the QuickBooks changes without a Sync Now.
    async def remaining() -> list[str] | None:
        accounts = sorted(link["account_id"] for link in (await firm.links())["links"])
        return accounts if accounts == ["a-s"] else None

    await eventually(remaining, timeout=60, what="delinks")
    removed = find(await firm.link_events(), type="link.removed")
    assert {e["account_id"]: e["reason"] for e in removed} == {
        "a-i": "customer made inactive in QuickBooks",
        "a-m": "customer deleted or merged away in QuickBooks",
        "a-x": "account archived in Liscio",
    }
    assert (await firm.customer(archived_customer))["Active"] is True  # nothing auto-deleted
    assert await firm.commands() == []  # Liscio is untouched
    report = await firm.sync()
    assert report["status"] == "done"
    assert [link["account_id"] for link in (await firm.links())["links"]] == ["a-s"]


async def test_a_customer_created_in_quickbooks_appears_without_sync_now(system: System) -> None:
    firm = await system.new_firm()
    await firm.sync()
    cid = await firm.add_customer("Arrives By Webhook")

    async def stored() -> bool:
        return bool(
            await system.pool.fetchval(
                "SELECT true FROM customers WHERE realm_id = $1 AND customer_id = $2",
                firm.realm_id,
                cid,
            )
        )

    assert await eventually(stored, timeout=30, what="new customer stored")


async def test_two_sync_nows_at_once_share_a_run_or_queue_one_behind_the_other(
    system: System,
) -> None:
    """Pressed before the run starts, the second press joins it; pressed once it is under
    way, it opens the next run, which starts only when the first has ended (it may have
    read QuickBooks before the press). Which of the two happens depends on the importer."""
    firm = await system.new_firm({"name": "Concurrent Co"})
    await firm.liscio.create(LiscioAccount("a-c", "Concurrent Co", status="Prospect"))
    # A slow QuickBooks keeps the first run open while the second request arrives.
    await system.admin.set_faults(firm.realm_id, latency_ms=1500)
    first, second = await asyncio.gather(firm.sync(), firm.sync())
    await system.admin.set_faults(firm.realm_id, latency_ms=0)
    assert first["status"] == second["status"] == "done"
    runs = await system.pool.fetch(
        "SELECT started_at, finished_at FROM sync_runs WHERE firm_id = $1 ORDER BY started_at",
        firm.firm_id,
    )
    assert len(runs) == len({first["run_id"], second["run_id"]})
    if len(runs) == 2:
        assert runs[1]["started_at"] >= runs[0]["finished_at"]  # one behind the other
    assert len((await firm.links())["links"]) == 1


async def test_firms_without_a_usable_connection(system: System) -> None:
    firm = await system.new_firm({"name": "Not Yet"}, connect=False)
    event = await firm.liscio.create(LiscioAccount("a-n", "Not Yet"))
    await eventually(lambda: processed_by_pusher(system, [event.event_id]), what="event handled")
    kept = await system.pool.fetchval(
        "SELECT name FROM accounts WHERE firm_id = $1 AND account_id = 'a-n'", firm.firm_id
    )
    assert kept == "Not Yet"  # kept for when the firm connects
    assert await firm.writes() == []  # no QuickBooks call
    result = await system.cli("sync", "--firm", firm.firm_id, "--wait", "--json", check=False)
    assert result.returncode != 0
    report = __import__("json").loads(result.stdout)
    assert report["status"] == "failed"
    assert "has no QuickBooks connection" in report["reason"]

    # A connection whose refresh token QuickBooks no longer accepts: needs reconnecting.
    other = await system.new_firm({"name": "Stale Token"})
    await system.pool.execute(
        "UPDATE connections SET refresh_token_enc = $2 WHERE firm_id = $1",
        other.firm_id,
        __import__("qbsync.crypto", fromlist=["TokenCipher"])
        .TokenCipher(system.env["QBSYNC_SECRET_KEY"])
        .encrypt("revoked-token"),
    )
    # An access token a service already holds (the importer may have polled the new realm)
    # would let the run succeed until it expires: QuickBooks ends them now.
    await system.admin.expire_access_tokens(other.realm_id)
    failed = await system.cli_json("sync", "--firm", other.firm_id, "--wait", "--json")
    assert failed["status"] == "failed"
    assert "needs reconnecting" in failed["reason"] or "invalid_grant" in failed["reason"]
    status = await system.pool.fetchval(
        "SELECT status FROM connections WHERE firm_id = $1", other.firm_id
    )
    assert status == "needs_reconnect"


async def test_connect_stores_the_token_encrypted_and_disconnect_revokes_it(system: System) -> None:
    firm = await system.new_firm({"name": "Connected Co"}, connect=False)
    await firm.liscio.create(LiscioAccount("a-c", "Connected Co", status="Prospect"))
    token = await system.admin.issue_refresh_token(firm.realm_id)
    await system.cli(
        "connect", "--firm", firm.firm_id, "--realm", firm.realm_id, "--refresh-token", token
    )
    stored = await system.pool.fetchval(
        "SELECT refresh_token_enc FROM connections WHERE firm_id = $1", firm.firm_id
    )
    assert token.encode() not in stored
    assert (await firm.sync())["status"] == "done"
    assert len((await firm.links())["links"]) == 1

    latest = TokenCipher(system.env["QBSYNC_SECRET_KEY"]).decrypt(
        await system.pool.fetchval(
            "SELECT refresh_token_enc FROM connections WHERE firm_id = $1", firm.firm_id
        )
    )
    result = await system.cli("disconnect", "--firm", firm.firm_id)
    assert "disconnected" in result.stdout
    assert (
        await system.pool.fetchval(
            "SELECT count(*) FROM connections WHERE firm_id = $1", firm.firm_id
        )
        == 0
    )
    assert len((await firm.links())["links"]) == 1  # no records are deleted
    async with httpx.AsyncClient() as http:  # the revoked token is refused from now on
        answer = await http.post(
            system.env["QBO_TOKEN_URL"],
            data={"grant_type": "refresh_token", "refresh_token": latest},
            auth=(system.env["QBO_CLIENT_ID"], system.env["QBO_CLIENT_SECRET"]),
        )
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    again = await system.cli("disconnect", "--firm", firm.firm_id, check=False)
    assert again.returncode == 1 and "has no connection" in again.stderr


async def test_the_matcher_rebuilds_its_copy_from_qbo_customers_and_reaches_the_same_links(
    system: System,
) -> None:
    firm = await system.new_firm({"name": "Rebuild One"}, {"name": "rebuild two"})
    for account_id, name in (("a-1", "REBUILD ONE"), ("a-2", "Rebuild Two")):
        await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect"))
    await firm.sync()
    links_before = {
        (link["account_id"], link["customer_id"]) for link in (await firm.links())["links"]
    }
    assert len(links_before) == 2

    # The matcher's copy of the realm is lost; the compacted topic still has every customer.
    system.processes["matcher"].stop()
    await system.pool.execute("DELETE FROM customers WHERE realm_id = $1", firm.realm_id)
    result = await system.cli("rewind", "--group", "qbsync-matcher", "--topic", "qbo.customers")
    assert "rewound" in result.stdout
    system.processes["matcher"] = start_services(system.env, ("services.matcher",))["matcher"]

    async def restored() -> bool:
        count = await system.pool.fetchval(
            "SELECT count(*) FROM customers WHERE realm_id = $1", firm.realm_id
        )
        return bool(count == 2)

    await eventually(restored, timeout=90, what="customers restored from qbo.customers")
    writes = len(await firm.writes())
    report = await firm.sync()
    assert report["status"] == "done"
    links_after = {
        (link["account_id"], link["customer_id"]) for link in (await firm.links())["links"]
    }
    assert links_after == links_before
    assert len(await firm.writes()) == writes


async def test_a_sync_now_while_the_pusher_writes_the_firms_customers_finishes(
    system: System,
) -> None:
    """Issue 11: the pusher's writes of a firm's customers reach `qbo.customers` while a
    Sync Now imports the same customers, so the run's import record and our later write of
    a customer often meet in one matcher batch. The run must still finish, every time."""
    names = [f"Busy Client {n:02d}" for n in range(40)]
    firm = await system.new_firm(*({"name": name} for name in names))
    for n, name in enumerate(names):
        await firm.liscio.create(LiscioAccount(f"a-{n}", name, status="Prospect"))
    assert (await firm.sync())["status"] == "done"  # linked

    async def keep_updating() -> None:
        for round_ in range(5):
            for n in range(len(names)):
                await firm.liscio.update(f"a-{n}", phone=f"512-555-{round_}{n:03d}")
            await asyncio.sleep(0)

    updates = asyncio.create_task(keep_updating())
    reports = [await firm.sync() for _ in range(3)]
    await updates

    assert [r["status"] for r in reports] == ["done"] * 3, reports
