"""A claimed step's lease is renewed for as long as its process works on it, and only so
long: a process that dies has its step taken over by another within one lease."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from qbsync.sync.steps import holding_step
from tests.support.memory_uow import MemoryUnitOfWork
from tests.support.polling import eventually


async def test_a_step_keeps_its_lease_while_worked_on_and_is_left_to_lapse_after() -> None:
    uow = MemoryUnitOfWork()
    runs = uow.direct.runs
    run, _ = await runs.open_or_join("firm", "request", "sync", datetime.now(UTC))
    assert await runs.claim_next("import") is not None
    step = uow.state.runs[run.run_id].steps["import"]
    first_lease = step.lease_until

    async def renewed() -> bool:
        return step.lease_until > first_lease

    async with holding_step(uow, run.run_id, "import", every=0.01):
        await eventually(renewed, timeout=5, what="the lease renewed")
        assert not await runs.claim(run.run_id, "import")  # held: nobody else may take it

    renewers = [t for t in asyncio.all_tasks() if "holding_step" in repr(t.get_coro())]
    assert renewers == []  # nothing renews it any more once the block is left
    step.lease_until = time.monotonic() - 1  # as it is one lease after its process died
    assert await runs.claim(run.run_id, "import")
