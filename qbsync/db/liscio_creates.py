"""Create in Liscio: the `account.create` commands sent for customers (table
`liscio_creates`), answered by Liscio's `account.created` event carrying the command_id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from qbsync.db.pool import Db


@dataclass(frozen=True)
class LiscioCreate:
    command_id: str
    firm_id: str
    realm_id: str
    customer_id: str
    actor: str
    state: str  # "pending" | "done" | "failed" | "expired"
    account_id: str | None = None
    asked_at: datetime | None = None
    retry_of: str | None = None  # the first command of the customer's retries
    attempt: int = 1

    @classmethod
    def from_row(cls, row: asyncpg.Record | Mapping[str, Any]) -> LiscioCreate:
        return cls(
            row["command_id"],
            row["firm_id"],
            row["realm_id"],
            row["customer_id"],
            row["actor"],
            row["state"],
            row["account_id"],
            row["created_at"],
            row["retry_of"],
            row["attempt"],
        )


_COLUMNS = (
    "command_id, firm_id, realm_id, customer_id, actor, state, account_id, created_at,"
    " retry_of, attempt"
)


async def begin_liscio_create(
    db: Db,
    firm_id: str,
    realm_id: str,
    customer_id: str,
    command_id: str,
    actor: str,
    retrying: LiscioCreate | None = None,
) -> tuple[LiscioCreate, bool]:
    """Record the command for the customer (the next attempt of `retrying`), or find the
    one still waiting for its account: (the command, whether it is new)."""
    row = await db.fetchrow(
        f"""
        INSERT INTO liscio_creates
               (command_id, firm_id, realm_id, customer_id, actor, retry_of, attempt)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
        """,
        command_id,
        firm_id,
        realm_id,
        customer_id,
        actor,
        (retrying.retry_of or retrying.command_id) if retrying else None,
        retrying.attempt + 1 if retrying else 1,
    )
    if row is not None:
        return LiscioCreate.from_row(row), True
    # The customer's command still waiting, or (a retry asked twice at once) this one.
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM liscio_creates"
        " WHERE (realm_id = $1 AND customer_id = $2 AND state = 'pending') OR command_id = $3"
        " ORDER BY state = 'pending' DESC LIMIT 1",
        realm_id,
        customer_id,
        command_id,
    )
    assert row is not None
    return LiscioCreate.from_row(row), False


async def liscio_create_of_command(db: Db, command_id: str) -> LiscioCreate | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM liscio_creates WHERE command_id = $1", command_id
    )
    return LiscioCreate.from_row(row) if row else None


async def finish_liscio_create(
    db: Db, command_id: str, *, account_id: str | None, failure: str | None = None
) -> None:
    await db.execute(
        "UPDATE liscio_creates SET state = $2, account_id = $3, reason = $4, updated_at = now()"
        " WHERE command_id = $1",
        command_id,
        "failed" if failure else "done",
        account_id,
        failure,
    )


async def customers_awaiting_accounts(db: Db, realm_id: str) -> set[str]:
    """The realm's customers whose account Liscio is still to create."""
    rows = await db.fetch(
        "SELECT customer_id FROM liscio_creates WHERE realm_id = $1 AND state = 'pending'",
        realm_id,
    )
    return {r["customer_id"] for r in rows}


async def waiting_liscio_creates(
    db: Db, realm_id: str, customer_ids: Sequence[str]
) -> dict[str, LiscioCreate]:
    """The commands still waiting for their account, of those of the realm's customers
    that have one, by customer id."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM liscio_creates"
        " WHERE realm_id = $1 AND customer_id = ANY($2::text[]) AND state = 'pending'",
        realm_id,
        list(customer_ids),
    )
    return {r["customer_id"]: LiscioCreate.from_row(r) for r in rows}


async def expire_liscio_create(db: Db, command_id: str) -> None:
    """No longer wait for the command's answer (an answer that still comes is linked only
    while the customer is not linked otherwise)."""
    await db.execute(
        "UPDATE liscio_creates SET state = 'expired', updated_at = now()"
        " WHERE command_id = $1 AND state = 'pending'",
        command_id,
    )
