"""Sync runs and their three steps (tables `sync_runs`, `sync_run_steps`).

A run is created by the importer from a SyncRequest, or joined when one is already open
for the firm. Each step is claimed by one process at a time under a lease: a claimant that
crashed lets the lease run out and another process takes the step over.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from qbsync import tracing
from qbsync.db.pool import Db, transaction_on

Step = Literal["import", "match", "push"]
STEPS: tuple[Step, ...] = ("import", "match", "push")
# Renewed every third of it while the step is worked on (`steps.holding_step`): short, so
# that a crashed process's step is taken over soon.
LEASE_SECONDS = 30
_LEASED = f"lease_until = now() + make_interval(secs => {LEASE_SECONDS})"


def _claimable(step: str) -> str:
    """The condition on a step row (`step`: its alias) that another process may claim it:
    pending, or running under a lease that ran out."""
    return (
        f"({step}.status = 'pending' OR ({step}.status = 'running' AND {step}.lease_until < now()))"
    )


@dataclass(frozen=True)
class Run:
    run_id: str
    firm_id: str
    realm_id: str | None
    kind: str
    status: str
    traceparent: str | None = None  # the trace of the request that opened it: its steps join

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Run:
        return cls(
            str(row["run_id"]),
            row["firm_id"],
            row["realm_id"],
            row["kind"],
            row["status"],
            row.get("traceparent"),
        )


async def open_or_join_run(
    db: Db, firm_id: str, request_id: str, kind: str, requested_at: datetime
) -> tuple[Run, bool]:
    """The firm's run that has not started yet with this request added, or a new one (which
    starts once the firm's run under way ends). Returns (run, created). Redelivery of a
    request that already belongs to a run returns that run."""
    async with transaction_on(db) as conn:
        # Serialise requests of one firm so two at once cannot both create a run.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('run:' || $1, 0))", firm_id
        )
        row = await conn.fetchrow(
            "SELECT * FROM sync_runs WHERE firm_id = $1 AND $2 = ANY(request_ids)",
            firm_id,
            request_id,
        )
        if row:
            return Run.from_row(row), False
        # Only a run that has not started: one under way may have read QuickBooks before
        # this request was made, and what changed since must be synced too.
        row = await conn.fetchrow(
            "UPDATE sync_runs SET request_ids = array_append(request_ids, $2)"
            " WHERE firm_id = $1 AND status = 'pending' RETURNING *",
            firm_id,
            request_id,
        )
        if row:
            return Run.from_row(row), False
        row = await conn.fetchrow(
            "INSERT INTO sync_runs"
            " (run_id, firm_id, kind, status, request_ids, requested_at, traceparent)"
            " VALUES ($1, $2, $3, 'pending', ARRAY[$4], $5, $6) RETURNING *",
            uuid.uuid4(),
            firm_id,
            kind,
            request_id,
            requested_at,
            tracing.current_traceparent(),
        )
        assert row is not None
        await conn.executemany(
            "INSERT INTO sync_run_steps (run_id, step) VALUES ($1, $2)",
            [(row["run_id"], step) for step in STEPS],
        )
        return Run.from_row(row), True


async def claim_step(db: Db, step: Step) -> Run | None:
    """Claim the oldest runnable `step` of any open run that is its firm's oldest: pending,
    or running with its lease run out. Only one process wins a claim."""
    row = await db.fetchrow(
        f"""
        UPDATE sync_run_steps s SET status = 'running', started_at = COALESCE(started_at, now()),
               {_LEASED}
         WHERE (s.run_id, s.step) = (
               SELECT c.run_id, c.step FROM sync_run_steps c
                 JOIN sync_runs r ON r.run_id = c.run_id
                WHERE c.step = $1 AND r.status IN ('pending', 'running') AND {_claimable("c")}
                  AND NOT EXISTS (SELECT 1 FROM sync_runs earlier
                                   WHERE earlier.firm_id = r.firm_id
                                     AND earlier.status IN ('pending', 'running')
                                     AND earlier.requested_at < r.requested_at)
                ORDER BY r.requested_at
                LIMIT 1 FOR UPDATE OF c SKIP LOCKED)
        RETURNING run_id
        """,
        step,
    )
    if row is None:
        return None
    run = await db.fetchrow(
        "UPDATE sync_runs SET status = 'running', started_at = COALESCE(started_at, now())"
        " WHERE run_id = $1 RETURNING *",
        row["run_id"],
    )
    assert run is not None  # steps cascade-delete with their run
    return Run.from_row(run)


async def open_step_ages(db: Db) -> dict[Step, float]:
    """Per step, how long the open run that has been in it longest has been there (since
    its previous step finished, or since it was requested): what an alert on runs stuck
    in a step watches. Steps no open run is in are left out."""
    rows = await db.fetch(
        """
        SELECT current.step, max(extract(epoch FROM now() - current.since)) AS seconds
          FROM (SELECT DISTINCT ON (s.run_id) s.step,
                       coalesce((SELECT max(d.finished_at) FROM sync_run_steps d
                                  WHERE d.run_id = s.run_id AND d.status = 'done'),
                                r.requested_at) AS since
                  FROM sync_runs r JOIN sync_run_steps s ON s.run_id = r.run_id
                 WHERE r.status IN ('pending', 'running') AND s.status <> 'done'
                 ORDER BY s.run_id, array_position(ARRAY['import', 'match', 'push'], s.step)
               ) current
         GROUP BY current.step
        """
    )
    return {row["step"]: float(row["seconds"]) for row in rows}


async def runs_waiting_for(db: Db, step: Step, after: Step) -> list[tuple[Run, dict[str, Any]]]:
    """Runs whose `step` is still pending while `after` is done, with `after`'s counts."""
    rows = await db.fetch(
        f"""
        SELECT r.*, p.counts AS after_counts FROM sync_runs r
          JOIN sync_run_steps s ON s.run_id = r.run_id AND s.step = $1
          JOIN sync_run_steps p ON p.run_id = r.run_id AND p.step = $2
         WHERE r.status = 'running' AND p.status = 'done' AND {_claimable("s")}
        """,
        step,
        after,
    )
    return [(Run.from_row(r), _json(r["after_counts"])) for r in rows]


async def claim_specific_step(db: Db, run_id: str, step: Step) -> bool:
    status = await db.execute(
        f"""
        UPDATE sync_run_steps s SET status = 'running', started_at = COALESCE(started_at, now()),
               {_LEASED}
         WHERE run_id = $1 AND step = $2 AND {_claimable("s")}
        """,
        uuid.UUID(run_id),
        step,
    )
    return status == "UPDATE 1"


async def renew_lease(db: Db, run_id: str, step: Step) -> None:
    await db.execute(
        f"UPDATE sync_run_steps SET {_LEASED} WHERE run_id = $1 AND step = $2"
        " AND status = 'running'",
        uuid.UUID(run_id),
        step,
    )


async def set_run_realm(db: Db, run_id: str, realm_id: str) -> None:
    await db.execute(
        "UPDATE sync_runs SET realm_id = $2 WHERE run_id = $1", uuid.UUID(run_id), realm_id
    )


async def finish_step(
    db: Db, run_id: str, step: Step, counts: dict[str, int], *, failure: str | None = None
) -> None:
    """Record the step's outcome; a failed step fails the run, the last step done ends it."""
    async with transaction_on(db) as conn:
        await conn.execute(
            "UPDATE sync_run_steps SET status = $3, counts = $4::text::jsonb, reason = $5,"
            " finished_at = now(), lease_until = NULL WHERE run_id = $1 AND step = $2",
            uuid.UUID(run_id),
            step,
            "failed" if failure else "done",
            json.dumps(counts),
            failure,
        )
        if failure:
            await conn.execute(
                "UPDATE sync_runs SET status = 'failed', reason = $2, finished_at = now()"
                " WHERE run_id = $1",
                uuid.UUID(run_id),
                f"{step}: {failure}",
            )
        elif step == STEPS[-1]:
            await conn.execute(
                "UPDATE sync_runs SET status = 'done', finished_at = now() WHERE run_id = $1",
                uuid.UUID(run_id),
            )


async def run_report(db: Db, run_id: str) -> dict[str, Any] | None:
    """The run as `qbsync sync --json` prints it (None: no such run; any string may be
    asked for)."""
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        return None
    run = await db.fetchrow("SELECT * FROM sync_runs WHERE run_id = $1", key)
    if run is None:
        return None
    steps = await db.fetch(
        "SELECT step, status, counts, reason, started_at, finished_at FROM sync_run_steps"
        " WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    by_step = {s["step"]: s for s in steps}
    return {
        "run_id": str(run["run_id"]),
        "firm_id": run["firm_id"],
        "realm_id": run["realm_id"],
        "kind": run["kind"],
        "status": run["status"],
        "reason": run["reason"],
        "requested_at": run["requested_at"],
        "finished_at": run["finished_at"],
        "steps": {
            step: {
                "status": by_step[step]["status"],
                "counts": _json(by_step[step]["counts"]),
                "reason": by_step[step]["reason"],
            }
            for step in STEPS
            if step in by_step
        },
    }


async def latest_run_of_firm(db: Db, firm_id: str) -> str | None:
    run_id = await db.fetchval(
        "SELECT run_id FROM sync_runs WHERE firm_id = $1 ORDER BY requested_at DESC LIMIT 1",
        firm_id,
    )
    return str(run_id) if run_id else None


async def run_of_request(db: Db, firm_id: str, request_id: str) -> str | None:
    run_id = await db.fetchval(
        "SELECT run_id FROM sync_runs WHERE firm_id = $1 AND $2 = ANY(request_ids)",
        firm_id,
        request_id,
    )
    return str(run_id) if run_id else None


def _json(value: Any) -> dict[str, Any]:
    return dict(json.loads(value)) if isinstance(value, str) else dict(value or {})
