"""What the API's tests share: tokens, a client, records stored straight into the
database (the API reads them as the services left them), and the list of every `/v1`
route read from the running app's OpenAPI, so routes added later join the access tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from qbsync.crypto import TokenCipher
from qbsync.db.accounts import store_accounts
from qbsync.db.connections import store_connection
from qbsync.db.customers import store_customers
from qbsync.db.links import insert_links
from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount, account_event
from schemas import CustomerRecord

JWT_SECRET = "api-test-secret-of-at-least-32-bytes!"
PROBLEM_JSON = "application/problem+json"


def token(
    firm_id: str,
    role: str = "admin",
    user: str = "u-admin",
    *,
    ttl: int = 600,
    secret: str = JWT_SECRET,
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {
        "sub": user,
        "firm_id": firm_id,
        "role": role,
        "exp": int(time.time()) + ttl,
    }
    payload.update(claims)
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, "HS256")


def bearer(firm_id: str, role: str = "admin", user: str = "u-admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(firm_id, role, user)}"}


@dataclass
class SeededFirm:
    firm_id: str
    realm_id: str


async def seed_firm(
    pool: Pool,
    secret_key: str,
    *,
    accounts: list[LiscioAccount],
    customers: list[dict[str, Any]],
    links: list[tuple[str, str]] = (),  # type: ignore[assignment]
    connect: bool = True,
) -> SeededFirm:
    """A firm whose accounts, customers and links are stored as the services store them.
    `customers`: CustomerRecord fields without realm_id."""
    firm = SeededFirm(f"firm-{uuid.uuid4().hex[:8]}", f"realm-{uuid.uuid4().hex[:8]}")
    await store_accounts(
        pool, [account_event(firm.firm_id, a, "account.created") for a in accounts]
    )
    await store_customers(
        pool,
        [
            CustomerRecord.model_validate(
                {
                    "realm_id": firm.realm_id,
                    "sync_token": "0",
                    **c,
                    "last_updated": datetime.now(UTC),
                }
            )
            for c in customers
        ],
    )
    if links:
        await insert_links(pool, firm.firm_id, firm.realm_id, links, "auto", [True] * len(links))
    if connect:
        await store_connection(
            pool, TokenCipher(secret_key), firm.firm_id, firm.realm_id, "refresh-token"
        )
    return firm


@dataclass(frozen=True, order=True)
class Operation:
    method: str
    path: str  # the template, e.g. /v1/firms/{firm_id}/syncs/{run_id}

    @property
    def writes(self) -> bool:
        return self.method not in ("GET", "HEAD")

    def url(self, firm_id: str, **ids: str) -> str:
        return self.path.format(firm_id=firm_id, **ids)


async def firm_operations(client: httpx.AsyncClient) -> list[Operation]:
    """Every operation below /v1/firms/{firm_id} the running API documents."""
    document = (await client.get("/openapi.json")).json()
    return sorted(
        Operation(method.upper(), path)
        for path, methods in document["paths"].items()
        if path.startswith("/v1/firms/{firm_id}")
        for method in methods
    )


def is_problem(response: httpx.Response, status: int) -> bool:
    return (
        response.status_code == status
        and response.headers.get("content-type", "").startswith(PROBLEM_JSON)
        and response.json()["status"] == status
    )
