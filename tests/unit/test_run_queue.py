"""Found by make chaos: a Sync Now pressed while the firm's run was under way joined that
run, whose push had read the customers before the press, so QuickBooks-side edits made
just before it were never put back. A press joins only a run that has not started; one
made during a run opens the next, which starts when that one ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from qbsync.db.runs import STEPS
from qbsync.sync.unit_of_work import UnitOfWork
from tests.support.memory_uow import MemoryUnitOfWork


async def presses_during_a_run_open_the_next_run(uow: UnitOfWork, firm: str) -> None:
    runs = uow.direct.runs
    at = datetime.now(UTC)
    first, created = await runs.open_or_join(firm, "press-1", "sync", at)
    joined, joined_created = await runs.open_or_join(
        firm, "press-2", "sync", at + timedelta(seconds=1)
    )
    assert created and not joined_created and joined.run_id == first.run_id  # not started yet
    claimed = await runs.claim_next("import")
    assert claimed is not None and claimed.run_id == first.run_id

    second, created = await runs.open_or_join(firm, "press-3", "sync", at + timedelta(seconds=2))
    later, later_created = await runs.open_or_join(
        firm, "press-4", "sync", at + timedelta(seconds=3)
    )
    assert created and second.run_id != first.run_id
    assert not later_created and later.run_id == second.run_id  # joins the next, not started
    assert await runs.claim_next("import") is None  # waits for the run under way

    for step in STEPS:
        await runs.finish_step(first.run_id, step, {})
    claimed = await runs.claim_next("import")
    assert claimed is not None and claimed.run_id == second.run_id


async def test_a_press_during_a_run_opens_the_next_run_in_memory() -> None:
    await presses_during_a_run_open_the_next_run(MemoryUnitOfWork(), "firm-q")
