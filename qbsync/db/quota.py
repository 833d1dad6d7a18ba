"""A realm's QuickBooks quota, shared by every process of the deployment (PostgreSQL ledger).

QuickBooks counts a realm's requests (500 a minute, 10 in flight) across every process of
our app. Each process takes *grants* from two tables (migration 0006):

- `qbo_quota_holders`: per realm and process, the calls it was granted and has not yet
  reported finished (unstarted or in flight), counted in full, and the in-flight slots it
  may use;
- `qbo_quota_spent`: finished calls, counted until one window after the last of them
  finished (the reporter says how long ago, so this always covers QuickBooks' own count).

A grant is one call of the SQL function `qbo_quota_take` (one round trip, serialised per
realm by an advisory lock): it reports what finished, gives back what went unused, and
takes up to `chunk` more calls and a fair share of the slots. A process that stops
refreshing its row (crashed) keeps its calls counted for `ttl` plus a window.
"""

from __future__ import annotations

import socket
import uuid
from datetime import date

from qbsync.db.pool import Db, Pool
from qbsync.quickbooks.limiter import Grant, TakeRequest


def holder_name() -> str:
    """A name for this process's rows, unique across the deployment."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"


class PostgresQuotaLedger:
    """The ledger the shared limiter takes its grants from (`qbsync.quickbooks.limiter`)."""

    def __init__(self, pool: Pool, holder: str | None = None) -> None:
        self._pool = pool
        self.holder = holder or holder_name()

    async def take(self, request: TakeRequest) -> Grant:
        row = await self._pool.fetchrow(
            "SELECT granted, slots, retry_in FROM qbo_quota_take("
            "$1, $2, $3, $4, $5, $6, $7, $8::smallint, $9, $10, $11, $12, $13, $14, $15, $16)",
            request.realm_id,
            self.holder,
            request.finished,
            request.in_flight_calls,
            request.in_flight,
            request.want_calls,
            request.want_slots,
            request.priority,
            request.limit,
            request.window_seconds,
            request.max_in_flight,
            request.chunk,
            request.ttl_seconds,
            request.reads,
            [calls for calls, _ in request.finished_groups],
            [ago for _, ago in request.finished_groups],
        )
        assert row is not None
        retry_in = row["retry_in"]
        return Grant(
            calls=int(row["granted"]),
            slots=int(row["slots"]),
            retry_in=float(retry_in) if retry_in is not None else None,
        )


async def reads_by_month(db: Db, month: date) -> list[dict[str, object]]:
    """Every realm's metered reads in the month starting `month` (the first of a month)."""
    rows = await db.fetch(
        "SELECT realm_id, reads FROM qbo_reads_by_month WHERE month = $1 ORDER BY realm_id",
        month,
    )
    return [{"realm_id": r["realm_id"], "reads": int(r["reads"])} for r in rows]
