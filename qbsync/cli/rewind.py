"""qbsync rewind --group G --topic T"""

from __future__ import annotations

import argparse

from qbsync.cli.base import EXIT_OK, Subparsers
from qbsync.config import Settings
from qbsync.kafka.rewind import rewind_group


def register(subparsers: Subparsers) -> None:
    rewind = subparsers.add_parser(
        "rewind",
        help="move a stopped consumer group back to the start of a topic",
        description="Stop the group's service first, rewind, then start it again: it reads "
        "the topic from the beginning (e.g. --group qbsync-matcher --topic qbo.customers).",
    )
    rewind.add_argument("--group", required=True, help="e.g. qbsync-matcher (without prefix)")
    rewind.add_argument("--topic", required=True, help="e.g. qbo.customers")
    rewind.set_defaults(handler=run_rewind)


async def run_rewind(args: argparse.Namespace, settings: Settings) -> int:
    count = await rewind_group(
        settings.KAFKA_BOOTSTRAP_SERVERS, settings.QBSYNC_TOPIC_PREFIX, args.group, args.topic
    )
    print(f"group {args.group} rewound to the start of {args.topic} ({count} partitions)")
    return EXIT_OK
