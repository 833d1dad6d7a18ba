"""qbsync dlq list | show | redrive | discard --topic T"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError

from qbsync.cli.base import EXIT_OK, Subparsers, print_json
from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.kafka.dead_letter_topics import (
    DeadLetterTopic,
    RedriveResult,
    topics_with_dead_letters,
)
from qbsync.kafka.producer import Producer


def register(subparsers: Subparsers) -> None:
    dlq = subparsers.add_parser(
        "dlq",
        help="inspect dead letters and put them back onto their topic",
        description=(
            "--topic is the input topic whose dead letters to handle (its dead-letter topic is "
            "<topic>.dlq): " + ", ".join(topics_with_dead_letters())
        ),
    )
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every dead letter the topic holds")
    show = actions.add_parser("show", help="one dead letter with its reason and original value")
    show.add_argument("--offset", type=int, required=True, help="its offset in <topic>.dlq")
    show.add_argument("--partition", type=int, default=0)
    redrive = actions.add_parser(
        "redrive", help="put the dead letters not yet redriven back onto the topic (idempotent)"
    )
    discard = actions.add_parser(
        "discard", help="mark the dead letters not yet redriven as handled, without redriving"
    )
    for parser, handler in (
        (listing, run_list),
        (show, run_show),
        (redrive, run_redrive),
        (discard, run_discard),
    ):
        parser.add_argument("--topic", required=True, help="e.g. liscio.account-events")
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.set_defaults(handler=handler)


async def run_list(args: argparse.Namespace, settings: Settings) -> int:
    topic = _topic(args, settings)
    async with _kafka_errors():
        letters = await topic.letters()
    if args.json:
        print_json(
            {
                "topic": topic.topic,
                "dead_letter_topic": topic.name,
                "pending": sum(1 for letter in letters if not letter.redriven),
                "letters": [letter.summary() for letter in letters],
            }
        )
        return EXIT_OK
    pending = sum(1 for letter in letters if not letter.redriven)
    lines = [f"{topic.name}: {len(letters)} dead letter(s), {pending} not redriven"]
    for letter in letters:
        row = letter.summary()
        at = letter.letter.at.strftime("%Y-%m-%d %H:%M:%S UTC") if letter.letter else "?"
        redriven = "  (redriven)" if letter.redriven else ""
        lines.append(
            f"[{letter.partition}] offset {letter.offset}  {at}  {row['service'] or '?'}  "
            f"key {letter.key!r}{redriven}"
        )
        lines.append(f"    {row['reason']}")
    print("\n".join(lines))
    return EXIT_OK


async def run_show(args: argparse.Namespace, settings: Settings) -> int:
    topic = _topic(args, settings)
    async with _kafka_errors():
        letter = await topic.letter(args.offset, args.partition)
    details = letter.details()
    if args.json:
        print_json(details)
        return EXIT_OK
    source = details["source"]
    lines = [
        f"dead letter {topic.name}[{letter.partition}] offset {letter.offset}",
        f"reason:   {details['reason']}",
        f"service:  {details['service']}",
        f"at:       {details['at']}",
        f"key:      {letter.key}",
        f"redriven: {'yes' if letter.redriven else 'no'}",
    ]
    if source:
        lines.append(
            f"from:     {source['topic']}[{source['partition']}] offset {source['offset']}"
        )
    value = details["value"]
    if value is not None:
        shown = value["data"]
        rendered = json.dumps(shown, indent=2) if value["encoding"] == "json" else str(shown)
        lines.append(f"value ({value['encoding']}):")
        lines.append(rendered)
    print("\n".join(lines))
    return EXIT_OK


async def run_redrive(args: argparse.Namespace, settings: Settings) -> int:
    topic = _topic(args, settings)
    producer = Producer(settings.KAFKA_BOOTSTRAP_SERVERS, settings.QBSYNC_TOPIC_PREFIX)
    async with _kafka_errors():
        await producer.start(attempts=min(3, settings.QBSYNC_CONNECT_ATTEMPTS))
        try:
            result = await topic.redrive(producer)
        finally:
            await producer.stop()
    _report(args, topic, result, f"moved {result.moved} message(s) back onto {topic.topic}")
    return EXIT_OK


async def run_discard(args: argparse.Namespace, settings: Settings) -> int:
    topic = _topic(args, settings)
    async with _kafka_errors():
        result = await topic.discard()
    _report(args, topic, result, f"discarded {result.discarded} dead letter(s) of {topic.topic}")
    return EXIT_OK


def _report(
    args: argparse.Namespace, topic: DeadLetterTopic, result: RedriveResult, line: str
) -> None:
    if args.json:
        print_json(
            {
                "topic": topic.topic,
                "dead_letter_topic": topic.name,
                "moved": result.moved,
                "skipped": result.skipped,
                "discarded": result.discarded,
            }
        )
        return
    if result.skipped:
        line += f"; skipped {result.skipped} unreadable dead letter(s)"
    print(line)


def _topic(args: argparse.Namespace, settings: Settings) -> DeadLetterTopic:
    return DeadLetterTopic(
        settings.KAFKA_BOOTSTRAP_SERVERS,
        settings.QBSYNC_TOPIC_PREFIX,
        args.topic,
        attempts=min(3, settings.QBSYNC_CONNECT_ATTEMPTS),
    )


@asynccontextmanager
async def _kafka_errors() -> AsyncIterator[None]:
    """A Kafka client error becomes one line on stderr (via the CLI's QbsyncError handling)."""
    try:
        yield
    except KafkaError as exc:
        raise DependencyUnavailable(f"Kafka: {type(exc).__name__}: {exc}") from exc
