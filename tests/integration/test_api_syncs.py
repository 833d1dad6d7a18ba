"""Sync Now, its dry run, a run's progress, disconnecting, Idempotency-Key and the body
limit, through the running API with the whole system behind it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.integration.system import Firm
from tests.support.api import bearer, is_problem, seed_firm
from tests.support.kafka import read_topic
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def _get(api: ApiSystem, firm_id: str, path: str, **params: Any) -> httpx.Response:
    return await api.client.get(
        f"/v1/firms/{firm_id}{path}", params=params, headers=bearer(firm_id, "staff")
    )


async def _firm_with_accounts(api: ApiSystem) -> Firm:
    firm = await api.system.new_firm(
        {"name": "Acme Ltd", "PrimaryPhone": {"FreeFormNumber": "512"}}
    )
    # Prospects: the pusher creates nothing for them, Sync Now links them by name.
    await firm.liscio.create(
        LiscioAccount("a-acme", "ACME LTD", status="Prospect", website="https://acme.example")
    )
    await firm.liscio.create(LiscioAccount("a-none", "Nobody Here", status="Prospect"))

    async def stored() -> bool:
        counts = (await _get(api, firm.firm_id, "/integration")).json()["counts"]
        return bool(counts["unlinked_accounts"] == 2)

    await eventually(stored, timeout=60, what="both accounts stored")
    return firm


async def _table_counts(pool: Pool, firm_id: str) -> dict[str, int]:
    """The firm's rows in every table a write could touch. Only the firm's: the services
    go on writing for other tests' firms meanwhile. The outbox is not among them (its rows
    leave as the relays publish them); what a write would have sent is read from the topic."""
    realm = "(SELECT realm_id FROM connections WHERE firm_id = $1)"
    runs = "(SELECT run_id FROM sync_runs WHERE firm_id = $1)"
    queries = {
        table: f"SELECT count(*) FROM {table} WHERE firm_id = $1"
        for table in (
            "accounts",
            "links",
            "audit_log",
            "sync_runs",
            "connections",
            "ambiguities",
            "pending_creates",
        )
    }
    queries["customers"] = f"SELECT count(*) FROM customers WHERE realm_id IN {realm}"
    queries["sync_run_steps"] = f"SELECT count(*) FROM sync_run_steps WHERE run_id IN {runs}"
    return {table: int(await pool.fetchval(sql, firm_id)) for table, sql in queries.items()}


async def _sync_requests_of(api: ApiSystem, firm_id: str) -> int:
    """How many Sync Now requests of the firm `sync.requests` carries."""
    topic = api.system.prefix + "sync.requests"
    sent = await read_topic(api.system.bootstrap, topic, expect=10**6, timeout=2)
    return sum(1 for key, _ in sent if key == firm_id)


async def _quickbooks_requests(api: ApiSystem, firm: Firm) -> list[dict[str, Any]]:
    """What the realm was asked, but the importer's change polling (CDC every second)."""
    return [
        r for r in await api.system.admin.requests(firm.realm_id) if not r["path"].endswith("/cdc")
    ]


async def test_sync_now_through_the_api_runs_and_reports_like_the_cli(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _firm_with_accounts(api_system)
    url = f"/v1/firms/{firm.firm_id}/syncs"
    first = await api_system.client.post(url, headers=bearer(firm.firm_id))
    assert first.status_code == 202, first.text
    run = first.json()
    assert run["firm_id"] == firm.firm_id and set(run["steps"]) == {"import", "match", "push"}
    second = await api_system.client.post(url, headers=bearer(firm.firm_id))
    assert second.status_code == 202
    if second.json()["run_id"] != run["run_id"]:  # the first had ended: only then a new one
        assert (await _get(api_system, firm.firm_id, f"/syncs/{run['run_id']}")).json()[
            "status"
        ] in ("done", "failed")

    async def finished() -> dict[str, Any] | None:
        found = (await _get(api_system, firm.firm_id, f"/syncs/{run['run_id']}")).json()
        return found if found["status"] in ("done", "failed") else None

    done = await eventually(finished, timeout=120, what="the run finished")
    assert done["status"] == "done", done
    assert done["steps"]["match"]["counts"]["linked"] == 1
    # The run document is the CLI's (`qbsync sync --json` prints run_report).
    cli = await api_system.system.cli_json("sync", "--firm", firm.firm_id, "--wait", "--json")
    assert set(cli) == set(done)
    linked = (await _get(api_system, firm.firm_id, "/records", filter="linked")).json()
    (pair,) = linked["items"]
    assert pair["account"]["id"] == "a-acme" and pair["customer"]["display_name"] == "Acme Ltd"
    assert pair["link"]["how"] == "auto"
    overview = (await _get(api_system, firm.firm_id, "/integration")).json()
    assert overview["counts"]["linked"] == 1
    assert overview["last_run"]["run_id"] in (run["run_id"], cli["run_id"])
    requests = await read_topic(
        api_system.system.bootstrap,
        api_system.system.prefix + "sync.requests",
        expect=10**6,
        timeout=3,
    )
    assert sum(1 for key, _ in requests if key == firm.firm_id) >= 2


async def test_a_dry_run_foretells_and_writes_no_row_no_message_no_quickbooks_request(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _firm_with_accounts(api_system)
    # The customers in the copy (an import) but no link yet: a replay of the import only.
    await api_system.system.cli("sync", "--firm", firm.firm_id, "--wait")
    await firm.liscio.create(
        LiscioAccount("a-bolt", "Bolt Inc", status="Prospect", phone="512-555-0199")
    )
    bolt_id = await firm.add_customer("BOLT INC")

    async def customer_stored() -> bool:
        found = await _get(api_system, firm.firm_id, "/records", filter="unlinked_customers")
        accounts = await _get(api_system, firm.firm_id, "/records", filter="unlinked_accounts")
        return len(found.json()["items"]) == 1 and len(accounts.json()["items"]) == 2

    await eventually(customer_stored, timeout=60, what="Bolt stored on both sides")
    before = await _table_counts(pool, firm.firm_id)
    quickbooks_before = await _quickbooks_requests(api_system, firm)
    sent_before = await _sync_requests_of(api_system, firm.firm_id)

    response = await api_system.client.post(
        f"/v1/firms/{firm.firm_id}/syncs", params={"dry_run": "true"}, headers=bearer(firm.firm_id)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "links": [{"account_id": "a-bolt", "customer_id": bolt_id}],
        "writes": [
            {
                "account_id": "a-bolt",
                "side": "quickbooks",
                "field": "phone",
                "old": None,
                "new": "512-555-0199",
            }
        ],
        "ambiguous": [],
    }
    assert await _table_counts(pool, firm.firm_id) == before
    assert await _quickbooks_requests(api_system, firm) == quickbooks_before
    assert await _sync_requests_of(api_system, firm.firm_id) == sent_before


async def test_sync_now_and_its_dry_run_need_a_connection(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await seed_firm(
        pool,
        api_system.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", "Solo")],
        customers=[],
        connect=False,
    )
    before = await _table_counts(pool, firm.firm_id)
    for params in ({}, {"dry_run": "true"}):
        response = await api_system.client.post(
            f"/v1/firms/{firm.firm_id}/syncs", params=params, headers=bearer(firm.firm_id)
        )
        assert is_problem(response, 409), response.text
    assert await _table_counts(pool, firm.firm_id) == before
    assert await _sync_requests_of(api_system, firm.firm_id) == 0


async def test_disconnecting_keeps_the_records_and_then_conflicts(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await api_system.system.new_firm({"name": "Kept Co"})
    await firm.liscio.create(LiscioAccount("a-kept", "Kept Co", status="Prospect"))
    await firm.sync()
    linked = (await _get(api_system, firm.firm_id, "/records", filter="linked")).json()
    url = f"/v1/firms/{firm.firm_id}/connection"
    response = await api_system.client.delete(url, headers=bearer(firm.firm_id))
    assert response.status_code == 204, response.text
    overview = (await _get(api_system, firm.firm_id, "/integration")).json()
    assert overview["connection"] is None
    assert overview["counts"]["linked"] == 1
    assert (await _get(api_system, firm.firm_id, "/records", filter="linked")).json() == linked
    assert is_problem(await api_system.client.delete(url, headers=bearer(firm.firm_id)), 409)
    assert is_problem(
        await api_system.client.post(
            f"/v1/firms/{firm.firm_id}/syncs", headers=bearer(firm.firm_id)
        ),
        409,
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM connections WHERE firm_id = $1", firm.firm_id)
        == 0
    )


async def test_an_idempotency_key_answers_the_first_response_again_and_does_nothing(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await seed_firm(
        pool,
        api_system.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", "Keyed")],
        customers=[],
    )
    url = f"/v1/firms/{firm.firm_id}/syncs"
    headers = bearer(firm.firm_id) | {"Idempotency-Key": "key-1"}
    first = await api_system.client.post(url, headers=headers)
    assert first.status_code == 202, first.text
    runs = await pool.fetchval("SELECT count(*) FROM sync_runs WHERE firm_id = $1", firm.firm_id)
    requests = await pool.fetchval(
        "SELECT request_ids FROM sync_runs WHERE firm_id = $1", firm.firm_id
    )
    again = await api_system.client.post(url, headers=headers)
    assert (again.status_code, again.content) == (202, first.content)
    assert again.headers["idempotent-replayed"] == "true"
    assert (
        await pool.fetchval("SELECT request_ids FROM sync_runs WHERE firm_id = $1", firm.firm_id)
        == requests
    )
    assert (
        await pool.fetchval("SELECT count(*) FROM sync_runs WHERE firm_id = $1", firm.firm_id)
        == runs
    )
    # The first answer's request is published (the outbox), and the replay sent none.
    await eventually(
        lambda: _sync_requests_of(api_system, firm.firm_id), what="the request published"
    )
    assert await _sync_requests_of(api_system, firm.firm_id) == 1
    other = await api_system.client.post(url, params={"dry_run": "true"}, headers=headers)
    assert is_problem(other, 422), other.text
    # A staff member replaying an admin's key is refused as without it.
    staff = bearer(firm.firm_id, "staff") | {"Idempotency-Key": "key-1"}
    assert is_problem(await api_system.client.post(url, headers=staff), 403)


async def test_a_body_over_64_kb_is_refused_whole(pool: Pool, api_system: ApiSystem) -> None:
    firm = await seed_firm(
        pool,
        api_system.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", "Big")],
        customers=[],
    )
    before = await _table_counts(pool, firm.firm_id)
    url = f"/v1/firms/{firm.firm_id}/syncs"
    big = b'{"x": "' + b"y" * 70_000 + b'"}'
    declared = await api_system.client.post(
        url, content=big, headers=bearer(firm.firm_id) | {"Content-Type": "application/json"}
    )
    assert is_problem(declared, 413), declared.text

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = await api_system.client.post(url, content=chunks(), headers=bearer(firm.firm_id))
    assert is_problem(streamed, 413), streamed.text
    assert await _table_counts(pool, firm.firm_id) == before
    assert await _sync_requests_of(api_system, firm.firm_id) == 0
