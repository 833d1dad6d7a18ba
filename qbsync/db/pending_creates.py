"""Customer creates recorded before QuickBooks is called (table `pending_creates`), so a
crash between the call and our commit is reconciled with the same `requestid`."""

from __future__ import annotations

from dataclasses import dataclass

from qbsync.db.pool import Db


@dataclass(frozen=True)
class PendingCreate:
    firm_id: str
    account_id: str
    request_id: str
    state: str
    customer_id: str | None
    # An earlier attempt got as far as recording the create and did not finish: it may or
    # may not have reached QuickBooks.
    retry: bool = False


async def begin_create(
    db: Db, firm_id: str, account_id: str, request_id: str, event_id: str
) -> PendingCreate:
    """Record the intent (committed before the call). An earlier unfinished attempt keeps
    its request id, so QuickBooks recognises the retry instead of creating twice."""
    row = await db.fetchrow(
        """
        WITH earlier AS (SELECT state FROM pending_creates WHERE firm_id = $1 AND account_id = $2)
        INSERT INTO pending_creates (firm_id, account_id, request_id, event_id)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (firm_id, account_id) DO UPDATE
           SET request_id = CASE WHEN pending_creates.state = 'pending'
                                 THEN pending_creates.request_id ELSE EXCLUDED.request_id END,
               state = CASE WHEN pending_creates.state = 'done' THEN 'done' ELSE 'pending' END,
               event_id = EXCLUDED.event_id, updated_at = now()
        RETURNING firm_id, account_id, request_id, state, customer_id,
                  COALESCE((SELECT state = 'pending' FROM earlier), false) AS retry
        """,
        firm_id,
        account_id,
        request_id,
        event_id,
    )
    assert row is not None
    return PendingCreate(**dict(row))


async def finish_create(
    db: Db, firm_id: str, account_id: str, *, customer_id: str | None, failure: str | None = None
) -> None:
    await db.execute(
        "UPDATE pending_creates SET state = $3, customer_id = $4, reason = $5, updated_at = now()"
        " WHERE firm_id = $1 AND account_id = $2",
        firm_id,
        account_id,
        "failed" if failure else "done",
        customer_id,
        failure,
    )


async def unfinished_creates(db: Db) -> list[PendingCreate]:
    rows = await db.fetch(
        "SELECT firm_id, account_id, request_id, state, customer_id, true AS retry"
        " FROM pending_creates"
        " WHERE state = 'pending' ORDER BY created_at"
    )
    return [PendingCreate(**dict(r)) for r in rows]
