"""What the use cases need from QuickBooks: the part of the client they call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol


class CustomerGateway(Protocol):
    def customers(
        self, realm_id: str, *, include_inactive: bool = False
    ) -> AsyncIterator[dict[str, Any]]: ...

    async def read_customer(self, realm_id: str, customer_id: str) -> dict[str, Any]: ...

    async def find_customers_by_name(
        self, realm_id: str, display_name: str
    ) -> list[dict[str, Any]]: ...

    async def create_customer(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]: ...

    async def update_customer(
        self,
        realm_id: str,
        customer_id: str,
        sync_token: str | None,
        changes: dict[str, Any],
        *,
        request_id: str,
    ) -> dict[str, Any]: ...


class InvoiceGateway(Protocol):
    """Invoices of a linked customer and its sub-customers, and the item they are sold as."""

    async def read_customer(self, realm_id: str, customer_id: str) -> dict[str, Any]: ...

    async def sub_customers(
        self, realm_id: str, parent_qualified_name: str
    ) -> list[dict[str, Any]]: ...

    async def invoices_of_customers(
        self, realm_id: str, customer_ids: list[str]
    ) -> list[dict[str, Any]]: ...

    async def find_items_by_name(self, realm_id: str, name: str) -> list[dict[str, Any]]: ...

    async def income_accounts(self, realm_id: str) -> list[dict[str, Any]]: ...

    async def create_item(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]: ...

    async def create_invoice(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]: ...


class TokenRevoker(Protocol):
    async def revoke(self, realm_id: str) -> None:
        """Best effort: revoke the realm's tokens at Intuit."""
