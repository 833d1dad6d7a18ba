"""GET /records: both sides' records, filtered, searched, a keyset page at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Query

from qbsync.db.records import RecordFilter, RecordKey
from qbsync.sync import integration
from services.api.auth import Access
from services.api.cursors import decode_cursor, encode_cursor
from services.api.deps import Deps
from services.api.ids import SearchText
from services.api.routes import firm_router
from services.api.schemas import Record, Records

router = firm_router("records")


@router.get(
    "/records",
    response_model=Records,
    summary="Linked pairs, unlinked accounts and unlinked customers",
    description="One item per linked pair and per unlinked record (archived accounts and"
    " inactive or deleted customers are not listed), ordered by the account's name (the"
    " customer's when alone) by `str.casefold()` and code point, then account id, then"
    " customer id.",
)
async def list_records(
    access: Access,
    deps: Deps,
    record_filter: Annotated[RecordFilter, Query(alias="filter")] = "all",
    q: Annotated[
        SearchText | None,
        Query(
            description="Case-insensitive substring of the account's or the customer's name",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> Records:
    after = RecordKey(*decode_cursor(cursor, (str, str, str))) if cursor else None
    expiry = timedelta(hours=deps.settings.QBSYNC_LISCIO_CREATE_EXPIRY_HOURS)
    page = await integration.records_page(
        deps.uow, access.firm_id, record_filter, q or None, after, limit, expiry
    )
    next_after = page.next_after
    return Records(
        items=[Record.of(item, page.creating) for item in page.items],
        next_cursor=encode_cursor(
            [next_after.folded, next_after.account_id, next_after.customer_id]
        )
        if next_after
        else None,
    )
