"""The `qbsync` command line. Each command group lives in a module of its own that
exposes `register(subparsers)`; this module only wires them together and turns
errors into one line on stderr with a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from qbsync.cli import (
    api_token,
    connection,
    database,
    dlq,
    emulator,
    lag,
    rewind,
    sync,
    topics,
    usage,
)
from qbsync.cli.base import EXIT_CONFIG, EXIT_FAILURE, Command
from qbsync.config import Settings, load_settings
from qbsync.errors import ConfigurationError, QbsyncError

COMMAND_MODULES = [
    database,
    topics,
    connection,
    sync,
    lag,
    dlq,
    rewind,
    emulator,
    api_token,
    usage,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbsync", description="Liscio <-> QuickBooks Online sync: operator commands."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.settings_free = getattr(args, "settings_free", False)
    command: Command = args.handler
    try:
        settings = Settings.model_construct() if args.settings_free else load_settings()
        code: int = asyncio.run(command(args, settings))
    except ConfigurationError as exc:
        print(f"qbsync: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    except QbsyncError as exc:
        print(f"qbsync: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_FAILURE) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # Whoever read our output left early (`qbsync lag --json | head`): nothing to report,
        # and the interpreter must not fail again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(EXIT_FAILURE) from None
    raise SystemExit(code)
