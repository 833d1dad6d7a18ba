"""Create in Liscio's memory in PostgreSQL (qbsync/db/liscio_creates.py): one command
waits per customer, whichever process asks; once answered, the customer may be asked for
again."""

from __future__ import annotations

import asyncio

from qbsync.db.liscio_creates import (
    begin_liscio_create,
    customers_awaiting_accounts,
    finish_liscio_create,
    liscio_create_of_command,
)
from qbsync.db.pool import Pool
from tests.conftest import unique


async def test_one_command_waits_per_customer_until_it_is_answered(pool: Pool) -> None:
    firm, realm = unique("firm"), unique("realm")

    # two API instances asking at once: one command, the other finds it
    (first, new_first), (second, new_second) = await asyncio.gather(
        begin_liscio_create(pool, firm, realm, "58", unique("cmd"), "u-1"),
        begin_liscio_create(pool, firm, realm, "58", unique("cmd"), "u-2"),
    )

    assert sorted([new_first, new_second]) == [False, True]
    assert first.command_id == second.command_id
    assert await customers_awaiting_accounts(pool, realm) == {"58"}
    await finish_liscio_create(pool, first.command_id, account_id="a-new")
    answered = await liscio_create_of_command(pool, first.command_id)
    assert answered is not None
    assert (answered.state, answered.account_id) == ("done", "a-new")
    assert await customers_awaiting_accounts(pool, realm) == set()
    again, new = await begin_liscio_create(pool, firm, realm, "58", unique("cmd"), "u-1")
    assert new and again.command_id != first.command_id
