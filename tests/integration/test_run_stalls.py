"""A Sync Now never waits forever (issue 11, defect 1): a run whose imported customers
stop reaching the matcher fails with a reason once its count has stood still for the
allowance, and the firm's next Sync Now starts a new run instead of joining it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from qbsync.db import runs
from qbsync.db.customers import store_customers
from qbsync.db.pool import Pool
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.sync.advance import RunAdvancer, StallWatch
from schemas import CustomerRecord
from tests.support.fake_quickbooks import FakeQuickBooks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def imported_run(pool: Pool, firm_id: str, realm_id: str, customers: int) -> str:
    """A run whose import step is done and sent `customers` customers."""
    run, created = await runs.open_or_join_run(
        pool, firm_id, str(uuid.uuid4()), "sync", datetime.now(UTC)
    )
    assert created
    assert await runs.claim_specific_step(pool, run.run_id, "import")
    # What the importer's claim (`runs.claim_step`) does to the run, without claiming
    # another test's run of the shared database.
    await pool.execute(
        "UPDATE sync_runs SET status = 'running' WHERE run_id = $1", uuid.UUID(run.run_id)
    )
    await runs.set_run_realm(pool, run.run_id, realm_id)
    await runs.finish_step(pool, run.run_id, "import", {"customers": customers})
    return run.run_id


def tagged(realm_id: str, customer_id: str, run_id: str) -> CustomerRecord:
    return CustomerRecord(
        realm_id=realm_id, customer_id=customer_id, display_name=customer_id, run_id=run_id
    )


async def test_a_run_that_stops_progressing_fails_and_the_next_sync_now_starts_afresh(
    pool: Pool,
) -> None:
    firm_id, realm_id = f"f-{uuid.uuid4()}", f"r-{uuid.uuid4()}"
    run_id = await imported_run(pool, firm_id, realm_id, customers=3)
    await store_customers(pool, [tagged(realm_id, "1", run_id)])
    clock = Clock()
    advancer = RunAdvancer(PostgresUnitOfWork(pool), FakeQuickBooks(), stall_seconds=60)
    advancer.stalls = StallWatch(clock)

    await advancer.tick()  # 1 of 3: waits
    clock.now += 59
    await advancer.tick()
    assert (await runs.run_report(pool, run_id) or {})["status"] == "running"
    await store_customers(pool, [tagged(realm_id, "2", run_id)])
    clock.now += 30
    await advancer.tick()  # progress (2 of 3): the allowance starts again
    clock.now += 59
    await advancer.tick()
    assert (await runs.run_report(pool, run_id) or {})["status"] == "running"
    clock.now += 2
    await advancer.tick()  # 61 s without progress

    report = await runs.run_report(pool, run_id)
    assert report is not None
    assert report["status"] == "failed"
    assert report["steps"]["match"]["status"] == "failed"
    assert "only 2 of the 3 imported customers" in report["reason"]
    again, created = await runs.open_or_join_run(
        pool, firm_id, str(uuid.uuid4()), "sync", datetime.now(UTC)
    )
    assert created and again.run_id != run_id


def test_the_stall_watch_counts_from_the_last_progress() -> None:
    clock = Clock()
    watch = StallWatch(clock)
    assert watch.still_for("r", 5) == 0.0
    clock.now += 10
    assert watch.still_for("r", 5) == 10.0
    assert watch.still_for("r", 6) == 0.0
    clock.now += 3
    assert watch.still_for("r", 6) == 3.0
    watch.forget("r")
    assert watch.still_for("r", 6) == 0.0
