"""Idempotency keys of the API's POSTs (table `idempotency_keys`): the first answer to a
key, kept 24 hours per firm."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qbsync.db.pool import Db

KEPT_HOURS = 24


@dataclass(frozen=True)
class StoredResponse:
    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True)
class IdempotencyClaim:
    """`new`: this request holds the key now and must complete or release it; `replay`:
    the key's first answer; `mismatch`: the key was used with another request;
    `in_progress`: the key's first request has not answered yet."""

    outcome: Literal["new", "replay", "mismatch", "in_progress"]
    response: StoredResponse | None = None


async def claim_key(db: Db, firm_id: str, key: str, fingerprint: str) -> IdempotencyClaim:
    # An expired key is free again: dropped first, in the same statement as the claim.
    row = await db.fetchrow(
        f"""
        WITH expired AS (
            DELETE FROM idempotency_keys WHERE firm_id = $1 AND key = $2
               AND created_at < now() - interval '{KEPT_HOURS} hours'),
        claimed AS (
            INSERT INTO idempotency_keys (firm_id, key, fingerprint) VALUES ($1, $2, $3)
            ON CONFLICT (firm_id, key) DO NOTHING RETURNING true AS new)
        SELECT (SELECT new FROM claimed) AS new
        """,
        firm_id,
        key,
        fingerprint,
    )
    if row is not None and row["new"]:
        return IdempotencyClaim("new")
    existing = await db.fetchrow(
        "SELECT fingerprint, status, content_type, body FROM idempotency_keys"
        " WHERE firm_id = $1 AND key = $2",
        firm_id,
        key,
    )
    if existing is None:  # released meanwhile: claim again
        return await claim_key(db, firm_id, key, fingerprint)
    if existing["fingerprint"] != fingerprint:
        return IdempotencyClaim("mismatch")
    if existing["status"] is None:
        return IdempotencyClaim("in_progress")
    return IdempotencyClaim(
        "replay", StoredResponse(existing["status"], existing["content_type"], existing["body"])
    )


async def complete_key(db: Db, firm_id: str, key: str, response: StoredResponse) -> None:
    await db.execute(
        "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5"
        " WHERE firm_id = $1 AND key = $2",
        firm_id,
        key,
        response.status,
        response.content_type,
        response.body,
    )


async def release_key(db: Db, firm_id: str, key: str) -> None:
    await db.execute(
        "DELETE FROM idempotency_keys WHERE firm_id = $1 AND key = $2 AND status IS NULL",
        firm_id,
        key,
    )
