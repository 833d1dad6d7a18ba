"""qbsync api-token: a token for the integration API, signed with QBSYNC_API_JWT_SECRET."""

from __future__ import annotations

import argparse
import time

import jwt

from qbsync.cli.base import EXIT_OK, Subparsers
from qbsync.config import Settings
from qbsync.errors import ConfigurationError

DEFAULT_TTL_SECONDS = 3600


def issue_token(
    settings: Settings, *, firm_id: str, role: str, user: str, ttl_seconds: int, now: float
) -> str:
    """A token as Liscio issues them, signed with the shared secret (`qbsync api-token`)."""
    if not settings.QBSYNC_API_JWT_SECRET:
        raise ValueError("QBSYNC_API_JWT_SECRET is required to sign tokens")
    claims = {
        "sub": user,
        "firm_id": firm_id,
        "role": role,
        "iat": int(now),
        "exp": int(now) + ttl_seconds,
    }
    return jwt.encode(claims, settings.QBSYNC_API_JWT_SECRET, algorithm="HS256")


def register(subparsers: Subparsers) -> None:
    token = subparsers.add_parser(
        "api-token", help="print a token for the integration API (operators, local use)"
    )
    token.add_argument("--firm", required=True)
    token.add_argument("--role", required=True, choices=["admin", "staff"])
    token.add_argument("--user", required=True, help="the token's sub (the user's id)")
    token.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds it stays valid"
    )
    token.set_defaults(handler=run_api_token)


async def run_api_token(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.QBSYNC_API_JWT_SECRET:
        raise ConfigurationError("QBSYNC_API_JWT_SECRET", "is required to sign API tokens")
    if args.ttl <= 0:
        raise ConfigurationError("--ttl", "must be a positive number of seconds")
    print(
        issue_token(
            settings,
            firm_id=args.firm,
            role=args.role,
            user=args.user,
            ttl_seconds=args.ttl,
            now=time.time(),
        )
    )
    return EXIT_OK
