"""The console reads and writes through the JSON API itself, in process: every button of
the page is a request to `/v1/firms/{firm_id}/...` carrying the session's token, so the
page goes through exactly the API's authorization, idempotency, audit and use cases (one
copy of every rule), and the page can only do what the contract lets Liscio's front end
do. No socket is opened: httpx hands the request straight to the ASGI application.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

# Only a name for the in-process requests; nothing is resolved or connected.
IN_PROCESS_BASE_URL = "http://api.in-process"


class ApiProblem(Exception):
    """A problem+json answer of the API."""

    def __init__(
        self, status: int, title: str, detail: str, retry_after: str | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


class ContractClient:
    """One firm's API, as one user (the session's token)."""

    def __init__(self, app: ASGIApp, token: str, firm_id: str) -> None:
        self._app = app
        self._token = token
        self.firm_id = firm_id

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        url = f"/v1/firms/{quote(self.firm_id, safe='')}{path}"
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_BASE_URL) as http:
            answer = await http.request(method, url, params=params, json=body, headers=headers)
        if answer.status_code == 204:
            return None
        try:
            document = answer.json()
        except ValueError:
            document = None
        if answer.status_code >= 400:
            raise _problem(answer, document)
        return document

    async def integration(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/integration")
        return result

    async def records(
        self, filter_name: str, q: str, limit: int, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {"filter": filter_name, "limit": str(limit)}
        if q:
            params["q"] = q
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = await self._call("GET", "/records", params=params)
        return result

    async def suggestions(self, side: str, record_id: str) -> list[dict[str, Any]]:
        key = "account_id" if side == "account" else "customer_id"
        result = await self._call("GET", "/suggestions", params={key: record_id})
        return list(result["items"])

    async def start_sync(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/syncs")
        return result

    async def dry_run(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/syncs", params={"dry_run": "true"})
        return result

    async def run(self, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/syncs/{quote(run_id, safe='')}")
        return result

    async def link(self, account_id: str, customer_id: str, key: str | None) -> dict[str, Any]:
        body = {"account_id": account_id, "customer_id": customer_id}
        result: dict[str, Any] = await self._call("POST", "/links", body=body, idempotency_key=key)
        return result

    async def delink(self, account_id: str) -> None:
        await self._call("DELETE", f"/links/{quote(account_id, safe='')}")

    async def create_in_quickbooks(self, account_id: str, key: str | None) -> dict[str, Any]:
        path = f"/accounts/{quote(account_id, safe='')}/create-in-quickbooks"
        result: dict[str, Any] = await self._call("POST", path, idempotency_key=key)
        return result

    async def create_in_liscio(self, customer_id: str, key: str | None) -> dict[str, Any]:
        path = f"/customers/{quote(customer_id, safe='')}/create-in-liscio"
        result: dict[str, Any] = await self._call("POST", path, idempotency_key=key)
        return result

    async def invoices(self, account_id: str, q: str, status: str) -> list[dict[str, Any]]:
        params = {"status": status} | ({"q": q} if q else {})
        path = f"/accounts/{quote(account_id, safe='')}/invoices"
        result = await self._call("GET", path, params=params)
        return list(result["items"])

    async def create_invoice(
        self, account_id: str, invoice: dict[str, Any], key: str | None
    ) -> dict[str, Any]:
        path = f"/accounts/{quote(account_id, safe='')}/invoices"
        result: dict[str, Any] = await self._call("POST", path, body=invoice, idempotency_key=key)
        return result

    async def audit(self, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
        params = {"account_id": account_id, "limit": str(limit)}
        result = await self._call("GET", "/audit", params=params)
        return list(result["items"])

    async def disconnect(self) -> None:
        await self._call("DELETE", "/connection")


def _problem(answer: httpx.Response, document: Any) -> ApiProblem:
    retry_after = answer.headers.get("retry-after")
    if isinstance(document, dict):
        return ApiProblem(
            answer.status_code,
            str(document.get("title") or answer.reason_phrase),
            str(document.get("detail") or ""),
            retry_after,
        )
    return ApiProblem(answer.status_code, answer.reason_phrase, answer.text[:200], retry_after)
