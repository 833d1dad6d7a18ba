"""Create in Liscio: the `account.create` commands sent for customers (table
`liscio_creates`), answered by Liscio's `account.created` event carrying the command_id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    state: str  # "pending" | "done" | "failed"
    account_id: str | None = None

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
        )


_COLUMNS = "command_id, firm_id, realm_id, customer_id, actor, state, account_id"


async def begin_liscio_create(
    db: Db, firm_id: str, realm_id: str, customer_id: str, command_id: str, actor: str
) -> tuple[LiscioCreate, bool]:
    """Record the command for the customer, or find the one still waiting for its account:
    (the command, whether it is new)."""
    row = await db.fetchrow(
        f"""
        INSERT INTO liscio_creates (command_id, firm_id, realm_id, customer_id, actor)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (realm_id, customer_id) WHERE state = 'pending' DO NOTHING
        RETURNING {_COLUMNS}
        """,
        command_id,
        firm_id,
        realm_id,
        customer_id,
        actor,
    )
    if row is not None:
        return LiscioCreate.from_row(row), True
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM liscio_creates"
        " WHERE realm_id = $1 AND customer_id = $2 AND state = 'pending'",
        realm_id,
        customer_id,
    )
    assert row is not None
    return LiscioCreate.from_row(row), False


async def liscio_create_of_command(db: Db, command_id: str) -> LiscioCreate | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM liscio_creates WHERE command_id = $1", command_id
    )
    return LiscioCreate.from_row(row) if row else None


async def finish_liscio_create(
    db: Db, command_id: str, *, account_id: str, failure: str | None = None
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
