"""qbsync emulator: the QuickBooks Online emulator in the foreground until SIGTERM/SIGINT.
Flags and defaults: docs/emulator.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal

from qbsync import log as logs
from qbsync.cli.base import EXIT_OK, Subparsers
from qbsync.config import Settings
from qbsync.emulator import config as defaults
from qbsync.emulator.config import EmulatorConfig
from qbsync.emulator.runner import start_emulator

log = logging.getLogger("qbsync.emulator")


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="run the QuickBooks Online emulator (see docs/emulator.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default=defaults.DEFAULT_HOST)
    add("--port", type=int, default=defaults.DEFAULT_PORT, help="0 takes a free port")
    add("--realm", default=defaults.DEFAULT_REALM_ID, help="id of the seeded demo company")
    add("--empty", action="store_true", help="start the demo company without sandbox data")
    add("--client-id", default=defaults.DEFAULT_CLIENT_ID)
    add("--client-secret", default=defaults.DEFAULT_CLIENT_SECRET)
    add(
        "--refresh-token",
        default=defaults.DEFAULT_REFRESH_TOKEN,
        help="a refresh token valid for --realm from the start (it rotates on use)",
    )
    add("--access-token-ttl", type=_positive, default=3600.0, help="access token lifetime, s")
    add(
        "--refresh-token-rotation",
        type=_non_negative,
        default=0.0,
        help="s a refresh token is answered again before it rotates (Intuit: about 86400)",
    )
    add(
        "--previous-refresh-token-ttl",
        type=_non_negative,
        default=86400.0,
        help="s a rotated-away refresh token keeps working (Intuit: 86400; 0: strict)",
    )
    add("--max-requests", type=_positive_int, default=500, help="requests per rate window")
    add("--rate-window", type=_positive, default=60.0, help="rate window length, s")
    add("--max-in-flight", type=_positive_int, default=10)
    add("--max-batches", type=_positive_int, default=40, help="batch requests per window")
    add("--latency-ms", type=_non_negative, default=0.0)
    add("--jitter-ms", type=_non_negative, default=0.0)
    add("--fault-5xx-rate", type=_rate, default=0.0)
    add("--drop-rate", type=_rate, default=0.0, help="writes applied, then connection dropped")
    add("--slow-rate", type=_rate, default=0.0)
    add("--slow-ms", type=_non_negative, default=5000.0)
    add("--webhook-url", default=None)
    add("--webhook-verifier-token", default=None)
    add("--webhook-batch-ms", type=_non_negative, default=200.0)
    add("--seed", type=int, default=0, help="random seed for jitter and injected faults")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        realm_id=args.realm,
        seed_realm=not args.empty,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        access_token_seconds=args.access_token_ttl,
        refresh_token_rotation_seconds=args.refresh_token_rotation,
        previous_refresh_token_seconds=args.previous_refresh_token_ttl,
        max_requests_per_window=args.max_requests,
        rate_window_seconds=args.rate_window,
        max_in_flight=args.max_in_flight,
        max_batches_per_window=args.max_batches,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        fault_5xx_rate=args.fault_5xx_rate,
        drop_rate=args.drop_rate,
        slow_rate=args.slow_rate,
        slow_ms=args.slow_ms,
        webhook_url=args.webhook_url,
        webhook_verifier_token=args.webhook_verifier_token,
        webhook_batch_ms=args.webhook_batch_ms,
        random_seed=args.seed,
    )


async def run(args: argparse.Namespace, settings: Settings) -> int:
    logs.configure("emulator", settings.QBSYNC_LOG_LEVEL)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    runner, emulator = await start_emulator(config_from_args(args))
    try:
        # One line on stdout, for scripts that start the emulator and need its addresses.
        ready = {
            "base_url": emulator.base_url,
            "token_url": emulator.token_url,
            "realm_id": emulator.realm_id,
            "refresh_token": emulator.refresh_token,
            "client_id": emulator.client_id,
        }
        print(json.dumps(ready), flush=True)
        log.info("emulator listening", extra=ready)
        await stopping.wait()
    finally:
        await emulator.admin.aclose()
        await runner.cleanup()
    return EXIT_OK
