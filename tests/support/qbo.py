"""Talking to the QuickBooks emulator the way an app does, for the emulator's own tests:
refresh-token grant first, then bearer requests under /v3/company/{realm}/; and the
project's own client pointed at it (`client_for`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from qbsync.emulator import RunningEmulator
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.limiter import Limits
from qbsync.quickbooks.tokens import TokenStore

# Retries that wait milliseconds: a test of an outage need not wait out real back-offs.
FAST_RETRIES = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.1)


def client_for(
    emulator: RunningEmulator,
    tokens: TokenStore,
    *,
    limits: Limits | None = None,
    retry: RetryPolicy = FAST_RETRIES,
    timeout: float = 10.0,
) -> QuickBooksClient:
    """The project's QuickBooks client, pointed at the emulator."""
    return QuickBooksClient(
        base_url=emulator.base_url,
        token_url=emulator.token_url,
        client_id=emulator.client_id,
        client_secret=emulator.client_secret,
        tokens=tokens,
        limits=limits or Limits(),
        retry=retry,
        timeout=timeout,
    )


class QboTestClient:
    def __init__(self, emulator: RunningEmulator, realm_id: str, http: httpx.AsyncClient) -> None:
        self.emulator = emulator
        self.realm_id = realm_id
        self.http = http
        self.access_token = ""

    async def authorize(self, refresh_token: str) -> dict[str, Any]:
        response = await self.http.post(
            self.emulator.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self.emulator.client_id, self.emulator.client_secret),
        )
        response.raise_for_status()
        grant: dict[str, Any] = response.json()
        self.access_token = grant["access_token"]
        return grant

    def url(self, path: str) -> str:
        return f"{self.emulator.company_url(self.realm_id)}/{path.lstrip('/')}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(self.url(path), params=params, headers=self.headers())

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        content: bytes | str | None = None,
        content_type: str = "application/json",
        **params: str,
    ) -> httpx.Response:
        headers = {**self.headers(), "Content-Type": content_type}
        return await self.http.post(
            self.url(path), json=body, content=content, params=params, headers=headers
        )

    async def query(self, text: str) -> httpx.Response:
        return await self.get("query", query=text, minorversion="75")

    async def query_rows(self, text: str, entity: str = "Customer") -> list[dict[str, Any]]:
        response = await self.query(text)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["QueryResponse"].get(entity, [])
        return rows

    async def create_customer(self, body: dict[str, Any], **params: str) -> dict[str, Any]:
        response = await self.post("customer", body, **params)
        assert response.status_code == 200, response.text
        customer: dict[str, Any] = response.json()["Customer"]
        return customer


@asynccontextmanager
async def qbo_client(
    emulator: RunningEmulator, realm_id: str | None = None, refresh_token: str | None = None
) -> AsyncIterator[QboTestClient]:
    """A client with a valid access token for `realm_id` (the emulator's demo realm by default)."""
    realm = realm_id or emulator.realm_id
    token = refresh_token or await emulator.admin.issue_refresh_token(realm)
    async with httpx.AsyncClient(timeout=30.0) as http:
        client = QboTestClient(emulator, realm, http)
        await client.authorize(token)
        yield client
