"""What the running API answers when something other than the request is wrong: QuickBooks
refusing the firm's access (a problem telling the firm to reconnect, and the connection
marked for it), PostgreSQL dropping the API's connection (503), and ids PostgreSQL's text
cannot hold on every route that takes one (404, or 422 when too long), never a 500."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from qbsync.db.accounts import get_account
from qbsync.demo.liscio import LiscioAccount, LiscioStandIn
from services.api.problems import RECONNECT_TYPE
from tests.integration.conftest import ApiSystem
from tests.support.api import bearer, is_problem
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def _prospect(api: ApiSystem, firm_id: str, liscio: LiscioStandIn) -> str:
    account_id = f"a-{uuid.uuid4().hex[:10]}"
    await liscio.create(LiscioAccount(account_id, "Refused Access LLC", status="Prospect"))

    async def stored() -> bool:
        return await get_account(api.system.pool, firm_id, account_id) is not None

    await eventually(stored, timeout=60, what="the account stored")
    return account_id


async def test_quickbooks_refusing_the_firm_asks_to_reconnect_and_marks_the_connection(
    api_system: ApiSystem,
) -> None:
    system, api = api_system.system, api_system.client
    firm = await system.new_firm()
    account_id = await _prospect(api_system, firm.firm_id, firm.liscio)
    # The company withdrew the app's access: even a freshly refreshed token is refused.
    await system.admin.set_faults(firm.realm_id, unauthorized_rate=1)
    path = f"/v1/firms/{firm.firm_id}/accounts/{account_id}/create-in-quickbooks"

    refused = await api.post(path, headers=bearer(firm.firm_id))

    assert is_problem(refused, 409), refused.text
    assert refused.json()["type"] == RECONNECT_TYPE
    assert "reconnect" in refused.json()["detail"]
    integration = await api.get(
        f"/v1/firms/{firm.firm_id}/integration", headers=bearer(firm.firm_id, "staff")
    )
    assert integration.json()["connection"]["status"] == "needs_reconnect"
    calls = len(await system.admin.requests(firm.realm_id))
    again = await api.post(path, headers=bearer(firm.firm_id))
    assert is_problem(again, 409) and again.json()["type"] == RECONNECT_TYPE, again.text
    assert len(await system.admin.requests(firm.realm_id)) == calls  # not asked again
    await system.admin.set_faults(firm.realm_id, unauthorized_rate=0)


async def test_the_database_dropping_the_api_connection_is_503(api_system: ApiSystem) -> None:
    system, api = api_system.system, api_system.client
    firm = await system.new_firm()
    pool = system.pool
    async with pool.acquire() as locker:
        transaction = locker.transaction()
        await transaction.start()
        # Held, so that the API's query waits where this test can find and end it.
        await locker.execute("LOCK TABLE connections IN ACCESS EXCLUSIVE MODE")
        request = asyncio.create_task(
            api.get(f"/v1/firms/{firm.firm_id}/integration", headers=bearer(firm.firm_id))
        )

        async def api_waiting() -> list[int]:
            rows = await pool.fetch(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'qbsync-api'"
                " AND wait_event_type = 'Lock' AND query LIKE '%connections%'"
            )
            return [r["pid"] for r in rows]

        waiting = await eventually(api_waiting, timeout=30, what="the API waiting on the lock")
        for pid in waiting:
            await pool.execute("SELECT pg_terminate_backend($1)", pid)
        await transaction.rollback()
    response = await request

    assert is_problem(response, 503), response.text
    assert response.headers["Retry-After"]

    async def answers_again() -> bool:
        again = await api.get(f"/v1/firms/{firm.firm_id}/integration", headers=bearer(firm.firm_id))
        return again.status_code == 200

    await eventually(answers_again, timeout=30, what="the API answering once the database is")


async def _id_parameters(api: ApiSystem) -> list[tuple[str, str, str, str]]:
    """(method, path, parameter, "path" | "query") for every id a route takes, read from
    the running API's own OpenAPI (FastAPI includes routers lazily, so app.routes does not
    list them): a route added later is checked as well."""
    document = (await api.client.get("/openapi.json")).json()
    return [
        (method.upper(), path, parameter["name"], parameter["in"])
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        for parameter in operation.get("parameters", [])
        if parameter["name"].endswith("_id") and parameter["in"] in ("path", "query")
    ]


@pytest.mark.parametrize(
    ("bad", "status"),
    [("a\x00b", 404), ("\x00", 404), ("x" * 201, 422)],
    ids=["nul", "only-nul", "too-long"],
)
async def test_every_id_postgresql_cannot_hold_is_a_problem_on_every_route(
    api_system: ApiSystem, bad: str, status: int
) -> None:
    """An id with a NUL names nothing (404); one longer than any id is of the wrong format."""
    firm = await api_system.system.new_firm()
    good = {"firm_id": firm.firm_id, "account_id": "a-1", "customer_id": "c-1", "run_id": "r-1"}
    checked = set()
    for method, path, name, where in await _id_parameters(api_system):
        ids = good | ({name: bad} if where == "path" else {})
        url = path.format(**{key: quote(value, safe="") for key, value in ids.items()})
        params = {name: bad} if where == "query" else {}
        body: Any = {"account_id": "a-1", "customer_id": "c-1"} if method == "POST" else None
        response = await api_system.client.request(
            method, url, params=params, json=body, headers=bearer(firm.firm_id)
        )
        assert is_problem(response, status), (method, url, params, response.text)
        assert name in response.json()["detail"]
        checked.add((path, name))
    names = {name for _, name in checked}
    assert names == {"firm_id", "account_id", "customer_id", "run_id"}, checked
