"""An async client for the emulator's /_emulator/ endpoints, for tests and benchmarks."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from qbsync.emulator.admin import PREFIX

JsonObject = dict[str, Any]


class EmulatorAdminError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"emulator admin answered {status}: {body}")
        self.status = status
        self.body = body


class EmulatorAdmin:
    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self._client = httpx.AsyncClient(base_url=base_url + PREFIX, timeout=timeout)

    async def __aenter__(self) -> EmulatorAdmin:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = await self._client.request(
            method,
            path,
            json=body,
            params={key: value for key, value in params.items() if value is not None},
        )
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.is_error:
            raise EmulatorAdminError(response.status_code, payload)
        return payload

    # Realms and tokens
    async def create_realm(
        self, realm_id: str | None = None, contents: str = "sandbox"
    ) -> JsonObject:
        """A new realm ("sandbox" or "empty"); the answer carries its `realm_id` and a
        valid `refresh_token`."""
        body: JsonObject = {"contents": contents}
        if realm_id is not None:
            body["realm_id"] = realm_id
        result: JsonObject = await self._call("POST", "/realms", body)
        return result

    async def reset_realm(self, realm_id: str, contents: str = "sandbox") -> JsonObject:
        result: JsonObject = await self._call("PUT", f"/realms/{realm_id}", {"contents": contents})
        return result

    async def realm(self, realm_id: str) -> JsonObject:
        result: JsonObject = await self._call("GET", f"/realms/{realm_id}")
        return result

    async def issue_refresh_token(self, realm_id: str) -> str:
        result = await self._call("POST", f"/realms/{realm_id}/refresh-tokens")
        return str(result["refresh_token"])

    async def token_rotation(self, **changes: float | bool) -> JsonObject:
        """The refresh-token rotation settings (and `held`, the token answers held now),
        after applying `changes`: rotation_seconds, previous_token_seconds, hold_answers."""
        method = "PUT" if changes else "GET"
        result: JsonObject = await self._call(method, "/oauth", changes or None)
        return result

    async def release_token_answers(self) -> int:
        """Answer the held token requests now (and hold no more); how many there were."""
        result = await self._call("POST", "/oauth/release")
        return int(result["released"])

    async def expire_access_tokens(self, realm_id: str) -> int:
        result = await self._call("POST", f"/realms/{realm_id}/expire-access-tokens")
        return int(result["expired"])

    # Data
    async def bulk_customers(
        self,
        realm_id: str,
        count: int,
        *,
        prefix: str = "Bulk Customer",
        inactive_every: int = 0,
    ) -> JsonObject:
        """{"created", "first_id", "last_id", "seconds"}"""
        body = {"count": count, "prefix": prefix, "inactive_every": inactive_every}
        result: JsonObject = await self._call("POST", f"/realms/{realm_id}/bulk-customers", body)
        return result

    async def customers(self, realm_id: str, *, include_inactive: bool = True) -> list[JsonObject]:
        result = await self._call(
            "GET", f"/realms/{realm_id}/customers", include_inactive=str(include_inactive).lower()
        )
        customers: list[JsonObject] = result["customers"]
        return customers

    async def customer(self, realm_id: str, customer_id: str) -> JsonObject | None:
        """The stored customer (a `status: Deleted` stub once merged away), None if unknown.
        Bypasses authentication and limits."""
        try:
            result: JsonObject = await self._call(
                "GET", f"/realms/{realm_id}/customers/{customer_id}"
            )
        except EmulatorAdminError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    async def create_customer_as_user(self, realm_id: str, fields: JsonObject) -> JsonObject:
        result: JsonObject = await self._call("POST", f"/realms/{realm_id}/customers", fields)
        return result

    async def edit_customer_as_user(
        self, realm_id: str, customer_id: str, changes: JsonObject
    ) -> JsonObject:
        """Change fields as a QuickBooks user would: no SyncToken; null clears a field."""
        result: JsonObject = await self._call(
            "PATCH", f"/realms/{realm_id}/customers/{customer_id}", changes
        )
        return result

    async def merge_customers(self, realm_id: str, from_id: str, into_id: str) -> JsonObject:
        result: JsonObject = await self._call(
            "POST", f"/realms/{realm_id}/customers/{from_id}/merge", {"into": into_id}
        )
        return result

    async def create_invoice_as_user(self, realm_id: str, fields: JsonObject) -> JsonObject:
        result: JsonObject = await self._call("POST", f"/realms/{realm_id}/invoices", fields)
        return result

    async def receive_payment_as_user(
        self, realm_id: str, invoice_id: str, amount: float
    ) -> JsonObject:
        """A payment recorded in QuickBooks against the invoice (its balance goes down)."""
        result: JsonObject = await self._call(
            "POST", f"/realms/{realm_id}/invoices/{invoice_id}/payments", {"amount": amount}
        )
        return result

    async def invoices(self, realm_id: str) -> list[JsonObject]:
        result = await self._call("GET", f"/realms/{realm_id}/invoices")
        invoices: list[JsonObject] = result["invoices"]
        return invoices

    # Observation
    async def requests(self, realm_id: str | None = None, since_seq: int = 0) -> list[JsonObject]:
        result = await self._call("GET", "/requests", realm=realm_id, since=since_seq)
        entries: list[JsonObject] = result["requests"]
        return entries

    async def clear_requests(self, realm_id: str | None = None) -> None:
        await self._call("DELETE", "/requests", realm=realm_id)

    async def limits(self, realm_id: str) -> JsonObject:
        result: JsonObject = await self._call("GET", f"/realms/{realm_id}/limits")
        return result

    async def set_limits(self, realm_id: str, **settings: float) -> JsonObject:
        """max_requests_per_window, window_seconds, max_in_flight, max_batches_per_window"""
        result: JsonObject = await self._call("PUT", f"/realms/{realm_id}/limits", settings)
        return result

    async def reset_limit_counters(self, realm_id: str) -> JsonObject:
        result: JsonObject = await self._call("POST", f"/realms/{realm_id}/limits/reset")
        return result

    async def faults(self, realm_id: str) -> JsonObject:
        result: JsonObject = await self._call("GET", f"/realms/{realm_id}/faults")
        return result

    async def set_faults(self, realm_id: str, **settings: float) -> JsonObject:
        """Any of latency_ms, jitter_ms, fault_5xx_rate, drop_rate, slow_rate, slow_ms,
        unauthorized_rate."""
        result: JsonObject = await self._call("PUT", f"/realms/{realm_id}/faults", settings)
        return result

    # Webhooks
    async def webhook(self) -> JsonObject:
        result: JsonObject = await self._call("GET", "/webhook")
        return result

    async def set_webhook(
        self,
        url: str | None,
        verifier_token: str | None,
        batch_ms: float | None = None,
        format: str | None = None,
    ) -> JsonObject:
        body: JsonObject = {"url": url, "verifier_token": verifier_token}
        if batch_ms is not None:
            body["batch_ms"] = batch_ms
        if format is not None:
            body["format"] = format
        result: JsonObject = await self._call("PUT", "/webhook", body)
        return result

    async def webhook_deliveries(self) -> list[JsonObject]:
        result = await self._call("GET", "/webhook/deliveries")
        deliveries: list[JsonObject] = result["deliveries"]
        return deliveries
