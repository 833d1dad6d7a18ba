"""qbsync topics ensure"""

from __future__ import annotations

import argparse

from qbsync.cli.base import EXIT_OK, Subparsers
from qbsync.config import Settings
from qbsync.kafka.admin import ensure_topics


def register(subparsers: Subparsers) -> None:
    topics = subparsers.add_parser("topics", help="Kafka topic catalogue")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("ensure", help="create missing topics").set_defaults(handler=run_ensure)


async def run_ensure(_: argparse.Namespace, settings: Settings) -> int:
    created = await ensure_topics(
        settings.KAFKA_BOOTSTRAP_SERVERS,
        settings.QBSYNC_TOPIC_PREFIX,
        settings.QBSYNC_CONNECT_ATTEMPTS,
    )
    print(f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else ""))
    return EXIT_OK
