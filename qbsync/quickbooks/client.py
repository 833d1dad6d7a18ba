"""The QuickBooks Online operations the services use (Customer, Item, Invoice, CDC, batch).

One client per process: it owns the HTTP connection pool, the per-realm limiters and the
token cache. With a quota ledger (the services pass PostgreSQL's), every process of the
deployment shares each realm's limits; without one, the limits are this process's.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import aiohttp

from qbsync.config import Settings
from qbsync.metrics import QBO_RETRIES
from qbsync.quickbooks.backoff import RetryPolicy, Sleep
from qbsync.quickbooks.errors import ServerError, StaleObjectError
from qbsync.quickbooks.limiter import Limiters, Limits, QuotaLedger, SharedLimiters
from qbsync.quickbooks.oauth import TokenManager
from qbsync.quickbooks.session import ApiSession
from qbsync.quickbooks.tokens import TokenStore
from qbsync.quickbooks.transport import ConnectorFactory, HttpClient

log = logging.getLogger("qbsync.quickbooks")

PAGE_SIZE = 1000  # QuickBooks' MAXRESULTS ceiling
# Customer pages requested ahead of the one being read: an import of a large realm overlaps
# QuickBooks' answers with its own work, within the 10 requests a realm may have in flight.
CUSTOMER_PAGES_AHEAD = 3
MAX_BATCH_ITEMS = 30
CDC_MAX_OBJECTS = 1000
# Customer ids named in one invoice query (its IN list); more take several queries.
INVOICE_CUSTOMERS_PER_QUERY = 100
# Re-reads after 5010 before giving up: each one means someone else wrote in between.
STALE_OBJECT_ATTEMPTS = 4

_PAGING = re.compile(r"\b(STARTPOSITION|MAXRESULTS)\b", re.IGNORECASE)
_ENTITY = re.compile(r"\bfrom\s+(\w+)", re.IGNORECASE)
_QUERY_META = {"startPosition", "maxResults", "totalCount"}
# Derived request ids for a re-applied write after 5010 (a new body needs a new id).
_REAPPLY_NAMESPACE = uuid.UUID("5b0d3f5e-4c1e-4b7a-9a57-1c7e3f0b2d11")


@dataclass(frozen=True)
class CustomerChanges:
    """What CDC returned: changed customers (deleted ones carry `status: "Deleted"`) and the
    server's `time`, the next `since`."""

    customers: list[dict[str, Any]]
    time: datetime

    @property
    def maybe_truncated(self) -> bool:
        """CDC returns at most 1000 objects; at the cap, more may have changed."""
        return len(self.customers) >= CDC_MAX_OBJECTS


def quote(value: str) -> str:
    """A string literal of the query language: single quotes, `\\'` inside."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def reapplied_request_id(request_id: str, attempt: int) -> str:
    """The requestid of the `attempt`-th re-application of one sparse update after 5010:
    derived, so the same logical write always uses the same ids."""
    return str(uuid.uuid5(_REAPPLY_NAMESPACE, f"{request_id}/{attempt}"))


def _rows(query_response: Mapping[str, Any], entity: str | None) -> list[dict[str, Any]]:
    if entity is not None:
        for key, value in query_response.items():
            if key.lower() == entity.lower() and isinstance(value, list):
                return value
        return []
    for key, value in query_response.items():
        if key not in _QUERY_META and isinstance(value, list):
            return value
    return []


class QuickBooksClient:
    def __init__(
        self,
        *,
        base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        tokens: TokenStore,
        minor_version: int = 75,
        limits: Limits = Limits(),  # noqa: B008 (frozen dataclass: a shared default is safe)
        timeout: float = 30.0,
        connector: ConnectorFactory | None = None,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008
        revoke_url: str | None = None,
        sleep: Sleep = asyncio.sleep,
        ledger: QuotaLedger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url
        self.minor_version = minor_version
        self.limits = limits
        self._http = HttpClient(timeout=timeout, connector=connector, trace_configs=trace_configs)
        self.tokens = TokenManager(
            http=self._http,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            store=tokens,
            retry=retry,
            revoke_url=revoke_url,
            sleep=sleep,
        )
        self.limiters: Limiters | SharedLimiters = (
            Limiters(limits) if ledger is None else SharedLimiters(limits, ledger)
        )
        self._session = ApiSession(
            http=self._http,
            base_url=base_url,
            tokens=self.tokens,
            limiters=self.limiters,
            retry=retry,
            minor_version=minor_version,
            sleep=sleep,
            clock=clock,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, tokens: TokenStore, ledger: QuotaLedger | None = None
    ) -> QuickBooksClient:
        client_id, client_secret = settings.oauth_client()
        return cls(
            base_url=settings.QBO_BASE_URL,
            token_url=settings.QBO_TOKEN_URL,
            client_id=client_id,
            client_secret=client_secret,
            tokens=tokens,
            minor_version=settings.QBO_MINOR_VERSION,
            limits=Limits.from_settings(settings),
            timeout=settings.QBO_TIMEOUT_SECONDS,
            ledger=ledger if settings.QBO_QUOTA_SCOPE == "deployment" else None,
        )

    async def aclose(self) -> None:
        if isinstance(self.limiters, SharedLimiters):
            await self.limiters.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> QuickBooksClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Queries

    async def query(
        self,
        realm_id: str,
        statement: str,
        *,
        page_size: int = PAGE_SIZE,
        operation: str = "query",
        pages_ahead: int = 0,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row `statement` selects, fetched `page_size` (at most 1000) at a time.
        The statement must not page itself. With `pages_ahead`, once a first full page has
        come back, that many following pages are requested while the caller works through
        the current one (the realm's limiter paces them like any request); the price is up
        to `pages_ahead` requests past the end, answered empty."""
        if _PAGING.search(statement):
            raise ValueError("the statement pages itself; query() adds STARTPOSITION/MAXRESULTS")
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{PAGE_SIZE}")
        if pages_ahead < 0:
            raise ValueError("pages_ahead must not be negative")
        match = _ENTITY.search(statement)
        entity = match.group(1) if match else None

        async def page(position: int) -> list[dict[str, Any]]:
            paged = f"{statement} STARTPOSITION {position} MAXRESULTS {page_size}"
            body = await self._session.call(
                realm_id, operation, "GET", "query", params={"query": paged}
            )
            return _rows(body.get("QueryResponse") or {}, entity)

        requested: deque[asyncio.Task[list[dict[str, Any]]]] = deque()
        position, ahead = 1, 0  # nothing ahead until a full page says there may be more
        try:
            while True:
                while len(requested) <= ahead:
                    requested.append(asyncio.ensure_future(page(position)))
                    position += page_size
                rows = await requested.popleft()
                for row in rows:
                    yield row
                if len(rows) < page_size:
                    return
                ahead = pages_ahead
        finally:
            for task in requested:  # past the end, or the caller stopped early
                task.cancel()
            await asyncio.gather(*requested, return_exceptions=True)

    def customers(
        self,
        realm_id: str,
        *,
        include_inactive: bool = False,
        page_size: int = PAGE_SIZE,
        pages_ahead: int = CUSTOMER_PAGES_AHEAD,
    ) -> AsyncIterator[dict[str, Any]]:
        statement = "select * from Customer"
        if include_inactive:
            statement += " where Active IN (true, false)"
        return self.query(
            realm_id,
            statement,
            page_size=page_size,
            operation="query_customers",
            pages_ahead=pages_ahead,
        )

    async def count_customers(self, realm_id: str, *, include_inactive: bool = False) -> int:
        statement = "select count(*) from Customer"
        if include_inactive:
            statement += " where Active IN (true, false)"
        body = await self._session.call(
            realm_id, "count_customers", "GET", "query", params={"query": statement}
        )
        total = (body.get("QueryResponse") or {}).get("totalCount")
        if not isinstance(total, int):
            raise ServerError(
                realm_id=realm_id,
                operation="count_customers",
                message="count(*) answer has no totalCount",
            )
        return total

    async def find_customers_by_name(
        self, realm_id: str, display_name: str
    ) -> list[dict[str, Any]]:
        """Active customers whose DisplayName is `display_name` ignoring case. QuickBooks'
        `=` already ignores case; the casefold check makes that exact for non-ASCII too."""
        wanted = display_name.casefold()
        statement = f"select * from Customer where DisplayName = {quote(display_name)}"
        return [
            customer
            async for customer in self.query(realm_id, statement, operation="find_customers")
            if str(customer.get("DisplayName", "")).casefold() == wanted
        ]

    async def sub_customers(
        self, realm_id: str, parent_qualified_name: str
    ) -> list[dict[str, Any]]:
        """Every sub-customer (any depth, active or not) of the customer whose
        FullyQualifiedName is given: theirs all start with it and a colon, which a name
        itself may not contain."""
        pattern = quote(f"{parent_qualified_name}:%")
        statement = (
            "select * from Customer where Active IN (true, false)"
            f" and FullyQualifiedName LIKE {pattern}"
        )
        prefix = f"{parent_qualified_name}:".casefold()
        return [  # a % or _ in the name is a wildcard of LIKE: keep the true descendants
            row
            async for row in self.query(realm_id, statement, operation="sub_customers")
            if str(row.get("FullyQualifiedName", "")).casefold().startswith(prefix)
        ]

    async def items(self, realm_id: str) -> list[dict[str, Any]]:
        return [row async for row in self.query(realm_id, "select * from Item", operation="items")]

    async def find_items_by_name(self, realm_id: str, name: str) -> list[dict[str, Any]]:
        """Active items named `name` ignoring case (item names are unique that way)."""
        wanted = name.casefold()
        statement = f"select * from Item where Name = {quote(name)}"
        return [
            item
            async for item in self.query(realm_id, statement, operation="find_items")
            if str(item.get("Name", "")).casefold() == wanted
        ]

    async def income_accounts(self, realm_id: str) -> list[dict[str, Any]]:
        """The realm's active income accounts (what an item's sales are booked to)."""
        statement = "select * from Account where AccountType = 'Income'"
        return [row async for row in self.query(realm_id, statement, operation="accounts")]

    async def invoices_of_customers(
        self, realm_id: str, customer_ids: list[str]
    ) -> list[dict[str, Any]]:
        """Every invoice of these customers, a page of 1000 at a time, oldest Id first."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(customer_ids), INVOICE_CUSTOMERS_PER_QUERY):
            chunk = customer_ids[start : start + INVOICE_CUSTOMERS_PER_QUERY]
            listed = ", ".join(quote(customer_id) for customer_id in chunk)
            statement = f"select * from Invoice where CustomerRef IN ({listed})"
            found.extend(
                [row async for row in self.query(realm_id, statement, operation="invoices")]
            )
        return found

    # Customers

    async def read_customer(self, realm_id: str, customer_id: str) -> dict[str, Any]:
        body = await self._session.call(realm_id, "read_customer", "GET", f"customer/{customer_id}")
        return self._entity(body, "Customer", realm_id, "read_customer")

    async def create_customer(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        return await self._create(realm_id, "Customer", body, request_id)

    async def update_customer(
        self,
        realm_id: str,
        customer_id: str,
        sync_token: str | None,
        changes: dict[str, Any],
        *,
        request_id: str,
    ) -> dict[str, Any]:
        """A sparse update of `changes`. Without a SyncToken, or when it turns out stale
        (5010), the customer is re-read and the same change re-applied with the current one."""
        token = sync_token
        for attempt in range(STALE_OBJECT_ATTEMPTS):
            if token is None:
                token = str((await self.read_customer(realm_id, customer_id))["SyncToken"])
            payload = {**changes, "Id": customer_id, "SyncToken": token, "sparse": True}
            this_request = request_id if attempt == 0 else reapplied_request_id(request_id, attempt)
            try:
                answer = await self._session.call(
                    realm_id,
                    "update_customer",
                    "POST",
                    "customer",
                    params={"requestid": this_request},
                    json_body=payload,
                )
            except StaleObjectError:
                if attempt + 1 == STALE_OBJECT_ATTEMPTS:
                    raise
                QBO_RETRIES.labels("update_customer", "stale_object").inc()
                log.warning(
                    "customer %s changed since SyncToken %s; re-reading and re-applying",
                    customer_id,
                    token,
                    extra={"realm_id": realm_id, "operation": "update_customer"},
                )
                token = None
                continue
            return self._entity(answer, "Customer", realm_id, "update_customer")
        raise AssertionError("unreachable")  # pragma: no cover

    async def deactivate_customer(
        self, realm_id: str, customer_id: str, *, request_id: str
    ) -> dict[str, Any]:
        """QuickBooks has no delete: a customer is made inactive."""
        return await self.update_customer(
            realm_id, customer_id, None, {"Active": False}, request_id=request_id
        )

    # Batch and CDC

    async def batch(
        self, realm_id: str, items: list[dict[str, Any]], *, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """One POST /batch of up to 30 BatchItemRequest entries (each with a `bId`); every
        item counts against the realm's quota. Per-item Faults stay in the answer."""
        if not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise ValueError(f"a batch holds 1..{MAX_BATCH_ITEMS} items, not {len(items)}")
        answer = await self._session.call(
            realm_id,
            "batch",
            "POST",
            "batch",
            params={"requestid": request_id or str(uuid.uuid4())},
            json_body={"BatchItemRequest": items},
            weight=len(items),
            batch=True,
        )
        responses = answer.get("BatchItemResponse")
        if not isinstance(responses, list):
            raise ServerError(
                realm_id=realm_id, operation="batch", message="answer has no BatchItemResponse"
            )
        return responses

    async def customer_changes(self, realm_id: str, since: datetime) -> CustomerChanges:
        """Customers changed since `since` (timezone-aware; QuickBooks looks back 30 days)."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        body = await self._session.call(
            realm_id,
            "cdc",
            "GET",
            "cdc",
            params={"entities": "Customer", "changedSince": since.isoformat()},
        )
        customers: list[dict[str, Any]] = []
        for entry in body.get("CDCResponse") or []:
            for query_response in entry.get("QueryResponse") or []:
                customers.extend(query_response.get("Customer") or [])
        try:
            time = datetime.fromisoformat(str(body["time"]))
        except (KeyError, ValueError):
            raise ServerError(
                realm_id=realm_id, operation="cdc", message="CDC answer has no valid time"
            ) from None
        return CustomerChanges(customers=customers, time=time)

    # Items and invoices

    async def create_item(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        return await self._create(realm_id, "Item", body, request_id)

    async def create_invoice(
        self, realm_id: str, body: dict[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        return await self._create(realm_id, "Invoice", body, request_id)

    async def _create(
        self, realm_id: str, entity: str, body: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        """POST /{entity}: a create, idempotent by its requestid."""
        operation = f"create_{entity.lower()}"
        answer = await self._session.call(
            realm_id,
            operation,
            "POST",
            entity.lower(),
            params={"requestid": request_id},
            json_body=body,
        )
        return self._entity(answer, entity, realm_id, operation)

    # Connection

    async def revoke(self, realm_id: str) -> None:
        """Best effort: revoke the realm's tokens at Intuit (failures are logged, not raised)."""
        await self.tokens.revoke(realm_id)

    @staticmethod
    def _entity(
        body: Mapping[str, Any], name: str, realm_id: str, operation: str
    ) -> dict[str, Any]:
        entity = body.get(name)
        if not isinstance(entity, dict):
            raise ServerError(
                realm_id=realm_id, operation=operation, message=f"answer has no {name}"
            )
        return entity
