"""Authorization on every route of the API, read from its own OpenAPI (routes added later
join these tests by themselves): 401 without a valid token, 404 for another firm's paths
exactly as for a firm that does not exist, 403 for a write by staff."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.support.api import (
    JWT_SECRET,
    Operation,
    SeededFirm,
    bearer,
    firm_operations,
    is_problem,
    seed_firm,
)

pytestmark = pytest.mark.integration


async def _firm(pool: Pool, api: ApiSystem, name: str) -> SeededFirm:
    return await seed_firm(
        pool,
        api.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", f"{name} Account")],
        customers=[{"customer_id": "c-1", "display_name": f"{name} Customer"}],
    )


def _ids() -> dict[str, str]:
    # Any id will do: authorization is decided before the id is looked at.
    return {
        "run_id": "00000000-0000-0000-0000-000000000000",
        "account_id": "a-1",
        "customer_id": "c-1",
    }


async def _call(
    client: httpx.AsyncClient, op: Operation, firm_id: str, headers: dict[str, str]
) -> httpx.Response:
    body: Any = {} if op.method == "POST" else None
    return await client.request(op.method, op.url(firm_id, **_ids()), headers=headers, json=body)


async def test_every_route_refuses_a_missing_or_invalid_token(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _firm(pool, api_system, "Tokens")
    now = int(time.time())
    claims = {"sub": "u", "firm_id": firm.firm_id, "role": "admin", "exp": now + 600}
    invalid = {
        "missing": None,
        "not a bearer": "Basic dXNlcjpwYXNz",
        "malformed": "Bearer not-a-jwt",
        "bad signature": "Bearer "
        + jwt.encode(claims, "another-secret-of-32-bytes-or-more!", "HS256"),
        "expired": "Bearer " + jwt.encode(claims | {"exp": now - 10}, JWT_SECRET, "HS256"),
        "no exp": "Bearer "
        + jwt.encode({k: v for k, v in claims.items() if k != "exp"}, JWT_SECRET, "HS256"),
        "unknown role": "Bearer " + jwt.encode(claims | {"role": "owner"}, JWT_SECRET, "HS256"),
        "no firm": "Bearer "
        + jwt.encode({k: v for k, v in claims.items() if k != "firm_id"}, JWT_SECRET, "HS256"),
        "alg none": "Bearer " + jwt.encode(claims, None, "none"),
    }
    operations = await firm_operations(api_system.client)
    assert len(operations) >= 7, operations
    for op in operations:
        for what, header in invalid.items():
            headers = {} if header is None else {"Authorization": header}
            response = await _call(api_system.client, op, firm.firm_id, headers)
            assert is_problem(response, 401), (op, what, response.status_code, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


async def test_another_firms_paths_are_not_found_exactly_as_an_unknown_firm(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm_a = await _firm(pool, api_system, "Alpha")
    firm_b = await _firm(pool, api_system, "Beta")
    for op in await firm_operations(api_system.client):
        for role in ("admin", "staff"):
            foreign = await _call(
                api_system.client, op, firm_a.firm_id, bearer(firm_b.firm_id, role)
            )
            # A token for a firm nobody knows, asking for that firm's own path.
            unknown = await _call(api_system.client, op, "firm-nobody", bearer("firm-nobody", role))
            assert is_problem(foreign, 404), (op, role, foreign.text)
            assert is_problem(unknown, 404), (op, role, unknown.text)

            def detail(response: httpx.Response) -> str:
                text: str = response.json()["detail"]
                return text.replace(firm_a.firm_id, "F").replace("firm-nobody", "F")

            assert detail(foreign) == detail(unknown)
            assert foreign.json()["title"] == unknown.json()["title"]


async def test_staff_may_read_every_route_and_write_none(pool: Pool, api_system: ApiSystem) -> None:
    firm = await _firm(pool, api_system, "Staff")
    before = await _row_counts(pool)
    for op in await firm_operations(api_system.client):
        response = await _call(api_system.client, op, firm.firm_id, bearer(firm.firm_id, "staff"))
        if op.writes:
            assert is_problem(response, 403), (op, response.status_code, response.text)
        else:
            assert response.status_code not in (401, 403), (op, response.text)
            assert response.status_code < 500, (op, response.text)
    assert await _row_counts(pool) == before


async def test_an_admin_passes_authorization_on_every_route(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await _firm(pool, api_system, "Admin")
    for op in await firm_operations(api_system.client):
        response = await _call(api_system.client, op, firm.firm_id, bearer(firm.firm_id))
        assert response.status_code not in (401, 403), (op, response.text)
        assert response.status_code < 500, (op, response.text)


async def _row_counts(pool: Pool) -> dict[str, int]:
    tables = (
        "accounts",
        "customers",
        "links",
        "audit_log",
        "outbox",
        "sync_runs",
        "connections",
        "idempotency_keys",
    )
    return {t: int(await pool.fetchval(f"SELECT count(*) FROM {t}")) for t in tables}
