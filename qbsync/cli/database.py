"""qbsync db migrate"""

from __future__ import annotations

import argparse

from qbsync.cli.base import EXIT_OK, Subparsers
from qbsync.config import Settings
from qbsync.db import connect_pool, migrate


def register(subparsers: Subparsers) -> None:
    db = subparsers.add_parser("db", help="database maintenance")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("migrate", help="apply pending migrations").set_defaults(handler=run_migrate)


async def run_migrate(_: argparse.Namespace, settings: Settings) -> int:
    pool = await connect_pool(settings.DATABASE_URL, attempts=settings.QBSYNC_CONNECT_ATTEMPTS)
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return EXIT_OK
