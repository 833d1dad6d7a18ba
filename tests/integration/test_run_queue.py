"""The run queue of tests/unit/test_run_queue.py on PostgreSQL: a Sync Now pressed while
the firm's run is under way opens the next run, which is claimed only once that one ends."""

from __future__ import annotations

from qbsync.db.pool import Pool
from qbsync.db.unit_of_work import PostgresUnitOfWork
from tests.conftest import unique
from tests.unit.test_run_queue import presses_during_a_run_open_the_next_run


async def test_a_press_during_a_run_opens_the_next_run(pool: Pool) -> None:
    await presses_during_a_run_open_the_next_run(PostgresUnitOfWork(pool), unique("firm"))
