"""qbsync connect / disconnect / connections rekey / secret-key"""

from __future__ import annotations

import argparse
import sys

from qbsync.cli.base import EXIT_FAILURE, EXIT_OK, Subparsers, database
from qbsync.config import Settings
from qbsync.crypto import TokenCipher, new_secret_key
from qbsync.db.connections import rekey_connections, store_connection
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

    connections = subparsers.add_parser("connections", help="the stored connections")
    actions = connections.add_subparsers(dest="action", required=True, metavar="ACTION")
    rekey = actions.add_parser(
        "rekey",
        help="re-encrypt every stored token with the newest key of QBSYNC_SECRET_KEY"
        " (the first; the others still decrypt)",
    )
    rekey.set_defaults(handler=run_rekey)

    secret_key = subparsers.add_parser(
        "secret-key", help="print a new key for QBSYNC_SECRET_KEY (32 random bytes, base64)"
    )
    # It reads no setting: it must work while QBSYNC_SECRET_KEY is being fixed.
    secret_key.set_defaults(handler=run_secret_key, settings_free=True)


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


async def run_rekey(args: argparse.Namespace, settings: Settings) -> int:
    cipher = TokenCipher(settings.secret_key())
    async with database(settings) as pool:
        count, undecryptable = await rekey_connections(pool, cipher)
    print(f"{count} connection(s) re-encrypted with the newest key of QBSYNC_SECRET_KEY")
    if undecryptable:
        print(
            f"qbsync: {len(undecryptable)} connection(s) no key of QBSYNC_SECRET_KEY decrypts,"
            f" left as they are (those firms must reconnect): {', '.join(undecryptable)}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK


async def run_secret_key(args: argparse.Namespace, settings: Settings) -> int:
    print(new_secret_key())
    return EXIT_OK
