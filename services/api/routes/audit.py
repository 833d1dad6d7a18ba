"""GET /audit: link changes and fields written, newest first, with who did them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from qbsync.sync import integration
from services.api.auth import Access
from services.api.cursors import decode_cursor, encode_cursor
from services.api.deps import Deps
from services.api.ids import Id
from services.api.routes import firm_router
from services.api.schemas import AuditItem, AuditPage

router = firm_router("audit")


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The firm's audit trail (of one account, or all), newest first",
)
async def get_audit(
    access: Access,
    deps: Deps,
    account_id: Annotated[Id | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> AuditPage:
    before = decode_cursor(cursor, (int,))[0] if cursor else None
    page = await integration.audit_page(deps.uow, access.firm_id, account_id, before, limit)
    return AuditPage(
        items=[
            AuditItem(
                at=e.at,
                action=e.action,
                account_id=e.account_id,
                customer_id=e.customer_id,
                side=e.side,
                field=e.field,
                old=e.old,
                new=e.new,
                reason=e.reason,
                actor=e.actor,
            )
            for e in page.items
        ],
        next_cursor=encode_cursor([page.next_before]) if page.next_before else None,
    )
