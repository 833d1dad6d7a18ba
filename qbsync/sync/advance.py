"""Moving Sync Now runs through their match and push steps (run by the matcher).

The importer finishes the import step with the number of customers it sent. Once the
matcher has stored that many customers tagged with the run, one matcher process claims
the match step, then the push step. Claims carry leases, renewed while the step is worked
on, so a crashed process's step is taken over by another within one lease. A run whose
stored count stops growing short of the import's fails after a while (`StallWatch`): a run
never waits forever."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from qbsync import metrics
from qbsync.db.runs import STEPS, Run, Step
from qbsync.errors import ConfigurationError
from qbsync.quickbooks.errors import QuickBooksError
from qbsync.quickbooks.limiter import bulk_work
from qbsync.sync.field_sync import SyncCounts
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.steps import StepFailed, holding_step, match_firm, push_firm
from qbsync.sync.unit_of_work import UnitOfWork

log = logging.getLogger("qbsync.sync.advance")


def _failure(counts: SyncCounts) -> str | None:
    if not counts.errors:
        return None
    return f"{len(counts.errors)} pair(s) could not be synced, first: {counts.errors[0]}"


@dataclass
class _Progress:
    count: int
    since: float


class StallWatch:
    """How long each run's count has stood still, as this process has seen it. Counted
    from this process's first look, so a matcher that starts behind a backlog gives the
    backlog the whole allowance again, and any progress starts it afresh."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, _Progress] = {}

    def still_for(self, run_id: str, count: int) -> float:
        now = self._clock()
        seen = self._seen.get(run_id)
        if seen is None or seen.count != count:
            self._seen[run_id] = _Progress(count, now)
            return 0.0
        return now - seen.since

    def forget(self, run_id: str) -> None:
        self._seen.pop(run_id, None)


class RunAdvancer:
    def __init__(
        self, uow: UnitOfWork, quickbooks: CustomerGateway, *, stall_seconds: float = 120.0
    ) -> None:
        self.uow = uow
        self.runs = uow.direct.runs
        self.quickbooks = quickbooks
        self.stall_seconds = stall_seconds
        self.stalls = StallWatch()
        self._working: dict[str, asyncio.Task[None]] = {}

    async def tick(self) -> None:
        """Start every match or push step that has become runnable."""
        db = self.uow.direct
        metrics.CONNECTIONS_NEEDING_RECONNECT.set(await db.connections.count_needing_reconnect())
        ages = await self.runs.open_step_ages()
        for step in STEPS:
            metrics.SYNC_RUN_STEP_AGE_SECONDS.labels(step).set(ages.get(step, 0.0))
        for run, imported in await self.runs.waiting_for("match", after="import"):
            if run.run_id in self._working or run.realm_id is None:
                continue
            expected = int(imported.get("customers", 0))
            stored = await db.customers.count_seen_in_run(run.realm_id, run.run_id)
            if stored < expected:  # the matcher has not stored every imported customer yet
                await self._fail_if_stalled(run, stored, expected)
                continue
            self.stalls.forget(run.run_id)
            if await self.runs.claim(run.run_id, "match"):
                self._start(run, self._match_then_push(run))
        for run, _ in await self.runs.waiting_for("push", after="match"):
            if run.run_id not in self._working and await self.runs.claim(run.run_id, "push"):
                self._start(run, self._push(run))

    async def _fail_if_stalled(self, run: Run, stored: int, expected: int) -> None:
        if self.stalls.still_for(run.run_id, stored) < self.stall_seconds:
            return
        if await self.runs.claim(run.run_id, "match"):
            self.stalls.forget(run.run_id)
            await self._finish(
                run,
                "match",
                {"stored": stored, "imported": expected},
                f"only {stored} of the {expected} imported customers reached the matcher,"
                f" and none more for {self.stall_seconds:g} s; press Sync Now again",
            )

    def _start(self, run: Run, work: Coroutine[Any, Any, None]) -> None:
        with bulk_work():  # a run's first sync gives way to writes a person waits for
            task = asyncio.ensure_future(work)
        self._working[run.run_id] = task
        task.add_done_callback(lambda _: self._working.pop(run.run_id, None))

    async def _match_then_push(self, run: Run) -> None:
        assert run.realm_id is not None
        try:
            async with holding_step(self.uow, run.run_id, "match"):
                outcome = await match_firm(
                    self.uow, self.quickbooks, run.firm_id, run.realm_id, run.run_id
                )
        except (StepFailed, QuickBooksError, ConfigurationError) as exc:
            await self._finish(run, "match", {}, str(exc))
            return
        failure = _failure(outcome.first_sync)
        await self._finish(run, "match", outcome.as_dict(), failure)
        if failure is None and await self.runs.claim(run.run_id, "push"):
            await self._push(run)

    async def _push(self, run: Run) -> None:
        try:
            async with holding_step(self.uow, run.run_id, "push"):
                outcome = await push_firm(self.uow, self.quickbooks, run.firm_id, run.run_id)
        except (StepFailed, QuickBooksError, ConfigurationError) as exc:
            await self._finish(run, "push", {}, str(exc))
            return
        await self._finish(run, "push", outcome.as_dict(), _failure(outcome.synced))

    async def _finish(
        self, run: Run, step: Step, counts: dict[str, int], failure: str | None
    ) -> None:
        await self.runs.finish_step(run.run_id, step, counts, failure=failure)
        metrics.SYNC_RUN_STEPS.labels(step, "failed" if failure else "done").inc()
        log.info(
            "sync run step finished",
            extra={
                "run_id": run.run_id,
                "firm_id": run.firm_id,
                "step": step,
                "counts": counts,
                "failure": failure,
            },
        )

    async def close(self) -> None:
        for task in list(self._working.values()):
            task.cancel()
        await asyncio.gather(*self._working.values(), return_exceptions=True)
