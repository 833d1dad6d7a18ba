"""The age of the oldest open run in each step, as PostgreSQL computes it (the gauge an
alert on stuck runs watches; issue 17)."""

from __future__ import annotations

from datetime import UTC, datetime

from qbsync.db import runs
from qbsync.db.pool import Pool
from tests.conftest import unique

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


async def test_a_run_is_counted_in_the_step_it_is_in_since_the_previous_one_finished(
    pool: Pool,
) -> None:
    run, _ = await runs.open_or_join_run(pool, unique("firm"), unique("request"), "sync", LONG_AGO)
    since_2000 = (datetime.now(UTC) - LONG_AGO).total_seconds()
    try:
        ages = await runs.open_step_ages(pool)
        assert ages["import"] >= since_2000 - 60  # no run of this database is older

        assert await runs.claim_specific_step(pool, run.run_id, "import")
        await runs.finish_step(pool, run.run_id, "import", {"customers": 3})
        ages = await runs.open_step_ages(pool)
        assert ages.get("import", 0.0) < since_2000 - 60  # it left the import step
        assert ages["match"] >= 0
    finally:
        await runs.finish_step(pool, run.run_id, "match", {}, failure="test over")
    assert (await runs.open_step_ages(pool)).get("match", 0.0) < since_2000 - 60
