"""What every CLI command shares."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from qbsync.config import Settings
from qbsync.db import connect_pool, migrate
from qbsync.db.pool import Pool

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
Subparsers = Any  # argparse's _SubParsersAction is private


@asynccontextmanager
async def database(settings: Settings, attempts: int = 3) -> AsyncIterator[Pool]:
    """A migrated pool for one command; closed afterwards."""
    pool = await connect_pool(
        settings.DATABASE_URL, attempts=attempts, max_size=4, application_name="qbsync-cli"
    )
    try:
        await migrate(pool)
        yield pool
    finally:
        await pool.close()


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, default=str, sort_keys=True))
