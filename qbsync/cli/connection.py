"""qbsync connect / disconnect"""

from __future__ import annotations

import argparse
import sys

from qbsync.cli.base import EXIT_FAILURE, EXIT_OK, Subparsers, database
from qbsync.config import Settings
from qbsync.crypto import TokenCipher
from qbsync.db.connections import store_connection
from qbsync.db.unit_of_work import PostgresUnitOfWork
from qbsync.errors import Conflict
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.postgres_tokens import PostgresTokenStore
from qbsync.sync.integration import disconnect


def register(subparsers: Subparsers) -> None:
    connect = subparsers.add_parser("connect", help="store a firm's QuickBooks connection")
    connect.add_argument("--firm", required=True)
    connect.add_argument("--realm", required=True)
    connect.add_argument("--refresh-token", required=True)
    connect.set_defaults(handler=run_connect)

    disconnect = subparsers.add_parser(
        "disconnect", help="forget a firm's QuickBooks connection (no records are deleted)"
    )
    disconnect.add_argument("--firm", required=True)
    disconnect.set_defaults(handler=run_disconnect)


async def run_connect(args: argparse.Namespace, settings: Settings) -> int:
    cipher = TokenCipher(settings.secret_key())
    async with database(settings) as pool:
        await store_connection(pool, cipher, args.firm, args.realm, args.refresh_token)
    print(f"firm {args.firm} connected to realm {args.realm}")
    return EXIT_OK


async def run_disconnect(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as pool:
        uow = PostgresUnitOfWork(pool)
        if await uow.direct.connections.of_firm(args.firm) is None:
            print(f"qbsync: firm {args.firm} has no connection", file=sys.stderr)
            return EXIT_FAILURE
        # Revoke at Intuit first (best effort: the client logs a failure), then forget.
        tokens = PostgresTokenStore(pool, TokenCipher(settings.secret_key()))
        async with QuickBooksClient.from_settings(settings, tokens) as quickbooks:
            try:
                realm_id = await disconnect(uow, quickbooks, args.firm)
            except Conflict as exc:  # disconnected meanwhile
                print(f"qbsync: {exc}", file=sys.stderr)
                return EXIT_FAILURE
    print(f"firm {args.firm} disconnected from realm {realm_id}; its links and records are kept")
    return EXIT_OK
