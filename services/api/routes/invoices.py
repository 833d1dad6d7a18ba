"""A linked account's invoices: listed from QuickBooks and created there for a contact
(qbsync/sync/invoices.py; the contact rule is qbsync/domain/invoices.py)."""

from __future__ import annotations

import math
import uuid
from datetime import date
from typing import Annotated

from fastapi import Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from qbsync.domain.invoices import InvoiceStatus
from qbsync.sync import invoices
from qbsync.sync.field_sync import stable_id
from services.api.auth import Access, AdminAccess
from services.api.deps import Deps
from services.api.ids import AccountId, SearchText
from services.api.problems import problem_responses
from services.api.routes import firm_router

router = firm_router("invoices")

# QuickBooks' own limits: a line's description holds 4000 characters; amounts are money.
MAX_DESCRIPTION = 4000
MAX_LINES = 250
MAX_AMOUNT = 1e11


class Invoice(BaseModel):
    """An invoice of QuickBooks, as the integration page shows it."""

    # Made from an InvoiceView by `Invoice.model_validate(view)` (from_attributes).

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "example": {
                "id": "130",
                "doc_number": "1037",
                "txn_date": "2026-11-25",
                "due_date": "2026-12-25",
                "total": 350.0,
                "balance": 350.0,
                "customer_id": "58",
                "contact_name": "Ada Lovelace",
            }
        },
    )

    id: str = Field(description="QuickBooks' Invoice Id")
    doc_number: str | None
    txn_date: str | None = Field(description="The invoice's date (YYYY-MM-DD)")
    due_date: str | None
    total: float
    balance: float = Field(description="What is still owed: 0 once paid")
    customer_id: str = Field(description="The linked customer or one of its sub-customers")
    contact_name: str | None = Field(
        description="The contact it was made for; for an invoice made elsewhere, the name of"
        " the individual on its customer"
    )


class Invoices(BaseModel):
    items: list[Invoice]


class NewInvoiceLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: float = Field(
        gt=0, le=MAX_AMOUNT, strict=True, description="In the company's currency, cents at most"
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION, strict=True)

    @field_validator("amount")
    @classmethod
    def _cents(cls, amount: float) -> float:
        if not math.isfinite(amount) or round(amount, 2) != amount:
            raise ValueError("an amount has at most two decimal places")
        return amount


class NewInvoice(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "contact_id": "c-1",
                "lines": [{"amount": 350.0, "description": "2026 tax return"}],
                "due_date": "2026-12-25",
            }
        },
    )

    contact_id: str = Field(min_length=1, max_length=255, strict=True)
    lines: list[NewInvoiceLine] = Field(min_length=1, max_length=MAX_LINES)
    due_date: date | None = Field(
        default=None, description="YYYY-MM-DD; null: QuickBooks' payment terms decide"
    )


@router.get(
    "/accounts/{account_id}/invoices",
    response_model=Invoices,
    summary="The linked customer's invoices and its sub-customers', read from QuickBooks",
    description="Newest first. `q`: case-insensitive substring of the invoice's number or of"
    " a line's description. `status`: `open` (something is owed), `paid` (nothing is) or"
    " `all`.",
    responses=problem_responses(409, 503),
)
async def list_invoices(
    access: Access,
    deps: Deps,
    account_id: AccountId,
    q: Annotated[SearchText | None, Query()] = None,
    status: InvoiceStatus = "all",
) -> Invoices:
    found = await invoices.list_invoices(
        deps.uow, deps.quickbooks, access.firm_id, account_id, q=q, status=status
    )
    return Invoices(items=[Invoice.model_validate(view) for view in found])


@router.post(
    "/accounts/{account_id}/invoices",
    status_code=201,
    response_model=Invoice,
    summary="Create an invoice in QuickBooks for a contact of the linked account",
    description="Made out to the linked customer, or to its sub-customer that carries the"
    " contact's name; one sales item line per line, on the realm's `Services` item (created"
    " as a service item when the realm has none).",
    responses=problem_responses(409, 413, 503),
)
async def create_invoice(
    access: AdminAccess,
    deps: Deps,
    account_id: AccountId,
    body: NewInvoice,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    # A retry under the same key sends QuickBooks the same requestids (its first answer
    # comes back); without a key, each request is a new invoice.
    request_id = (
        stable_id("api", access.firm_id, idempotency_key) if idempotency_key else uuid.uuid4().hex
    )
    made = await invoices.create_invoice(
        deps.uow,
        deps.quickbooks,
        access.firm_id,
        account_id,
        contact_id=body.contact_id,
        lines=[invoices.InvoiceLine(line.amount, line.description) for line in body.lines],
        due_date=body.due_date,
        request_id=request_id,
    )
    return JSONResponse(Invoice.model_validate(made).model_dump(mode="json"), status_code=201)
