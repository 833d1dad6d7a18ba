"""GET /suggestions: similar unlinked records of the other side (pg_trgm similarity)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from qbsync.sync import integration
from services.api.auth import Access
from services.api.deps import Deps
from services.api.ids import Id
from services.api.problems import Problem
from services.api.routes import firm_router
from services.api.schemas import (
    Account,
    AccountSuggestion,
    Customer,
    CustomerSuggestion,
    Suggestions,
)

router = firm_router("suggestions")


@router.get(
    "/suggestions",
    response_model=Suggestions,
    summary="Up to 10 unlinked, linkable records of the other side, most similar first",
    description="Give `account_id` (customers are suggested) or `customer_id` (accounts are"
    " suggested). Sub-customers are never suggested.",
)
async def get_suggestions(
    access: Access,
    deps: Deps,
    account_id: Annotated[Id | None, Query()] = None,
    customer_id: Annotated[Id | None, Query()] = None,
) -> Suggestions:
    if (account_id is None) == (customer_id is None):
        raise Problem(
            422, "Unprocessable Content", "give exactly one of account_id and customer_id"
        )
    found = await integration.suggestions(
        deps.uow, access.firm_id, account_id=account_id, customer_id=customer_id
    )
    if account_id is not None:
        return Suggestions(
            items=[
                CustomerSuggestion(
                    customer=Customer.model_validate(s.customer), score=min(s.score, 1.0)
                )
                for s in found
                if s.customer is not None
            ]
        )
    return Suggestions(
        items=[
            AccountSuggestion(account=Account.model_validate(s.account), score=min(s.score, 1.0))
            for s in found
            if s.account is not None
        ]
    )
