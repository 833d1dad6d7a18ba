"""qbsync sync / replay / links"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from qbsync.cli.base import EXIT_FAILURE, EXIT_OK, Subparsers, database, print_json
from qbsync.config import Settings
from qbsync.db.accounts import accounts_needing_attention
from qbsync.db.links import ambiguities_of_firm, links_of_firm
from qbsync.db.pool import Pool
from qbsync.db.runs import run_of_request, run_report
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import SYNC_REQUESTS
from qbsync.retry import is_transient
from schemas import SyncRequest

APPEAR_TIMEOUT = 15.0  # how long to wait for the importer to open the run without --wait


def register(subparsers: Subparsers) -> None:
    sync = subparsers.add_parser("sync", help="Sync Now for a firm")
    sync.add_argument("--firm", required=True)
    sync.add_argument("--wait", action="store_true", help="return when the run ends")
    sync.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits at most")
    sync.add_argument("--json", action="store_true", help="print the run as JSON")
    sync.set_defaults(handler=run_sync)

    replay = subparsers.add_parser("replay", help="run full syncs again (idempotent)")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--firm")
    which.add_argument("--all", action="store_true", help="every connected firm")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=run_replay)

    links = subparsers.add_parser("links", help="a firm's links and ambiguous names")
    links.add_argument("--firm", required=True)
    links.add_argument("--json", action="store_true")
    links.set_defaults(handler=run_links)


async def request_syncs(settings: Settings, firm_ids: list[str], kind: str) -> list[SyncRequest]:
    producer = Producer(settings.KAFKA_BOOTSTRAP_SERVERS, settings.QBSYNC_TOPIC_PREFIX)
    await producer.start(attempts=3)
    try:
        requests = [
            SyncRequest(
                request_id=str(uuid.uuid4()),
                firm_id=firm_id,
                kind=kind,
                requested_at=datetime.now(UTC),
            )
            for firm_id in firm_ids
        ]
        for request in requests:
            await producer.send(SYNC_REQUESTS, request.firm_id, request)
        return requests
    finally:
        await producer.stop()


async def wait_for_run(
    pool: Pool, request: SyncRequest, *, until_finished: bool, timeout: float
) -> dict[str, Any] | None:
    """The request's run once it exists (and, `until_finished`, has ended). PostgreSQL
    restarting meanwhile is waited out like the services do, with one line when it goes
    and one when it is back: the run goes on without us."""
    deadline = time.monotonic() + timeout
    outage = False
    while time.monotonic() < deadline:
        try:
            report = await _report_of_request(pool, request)
        except Exception as exc:
            if not is_transient(exc):
                raise
            if not outage:
                print(f"database unavailable ({exc}); still waiting", file=sys.stderr)
            outage = True
            report = None
        else:
            if outage:
                print("database back; still waiting", file=sys.stderr)
            outage = False
        if report and (not until_finished or report["status"] in ("done", "failed")):
            return report
        await asyncio.sleep(0.2)
    return None


async def _report_of_request(pool: Pool, request: SyncRequest) -> dict[str, Any] | None:
    run_id = await run_of_request(pool, request.firm_id, request.request_id)
    return None if run_id is None else await run_report(pool, run_id)


def describe(report: dict[str, Any]) -> str:
    lines = [f"run {report['run_id']} of firm {report['firm_id']}: {report['status']}"]
    if report.get("reason"):
        lines.append(f"  reason: {report['reason']}")
    for step, info in report["steps"].items():
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        lines.append(f"  {step:<6} {info['status']:<8} {counts}")
    return "\n".join(lines)


async def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as pool:
        (request,) = await request_syncs(settings, [args.firm], "sync")
        timeout = args.timeout if args.wait else APPEAR_TIMEOUT
        report = await wait_for_run(pool, request, until_finished=args.wait, timeout=timeout)
    if report is None:
        pending = {"run_id": None, "request_id": request.request_id, "status": "requested"}
        if args.json:
            print_json(pending)
        else:
            print(f"sync requested ({request.request_id}); no run has reported yet")
        return EXIT_FAILURE if args.wait else EXIT_OK
    if args.json:
        print_json(report)
    else:
        print(describe(report))
    return EXIT_FAILURE if args.wait and report["status"] != "done" else EXIT_OK


async def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as pool:
        if args.all:
            firms = [
                r["firm_id"] for r in await pool.fetch("SELECT firm_id FROM connections ORDER BY 1")
            ]
        else:
            firms = [args.firm]
    requests = await request_syncs(settings, firms, "replay")
    if args.json:
        print_json([{"firm_id": r.firm_id, "request_id": r.request_id} for r in requests])
    else:
        print(f"replay requested for {len(requests)} firm(s)")
    return EXIT_OK


async def run_links(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as pool:
        links = await links_of_firm(pool, args.firm)
        ambiguous = await ambiguities_of_firm(pool, args.firm)
        attention = await accounts_needing_attention(pool, args.firm)
    document = {
        "firm_id": args.firm,
        "links": [
            {
                "account_id": link.account_id,
                "realm_id": link.realm_id,
                "customer_id": link.customer_id,
                "how": link.how,
                "linked_at": link.linked_at,
            }
            for link in links
        ],
        "ambiguous": [
            {
                "name": a["name_folded"],
                "account_ids": a["account_ids"],
                "customer_ids": a["customer_ids"],
                "detected_at": a["detected_at"],
            }
            for a in ambiguous
        ],
        "attention": attention,
    }
    if args.json:
        print_json(document)
    else:
        for link in document["links"]:
            print(
                f"{link['account_id']} <-> {link['realm_id']}:{link['customer_id']} ({link['how']})"
            )
        for a in attention:
            print(f"needs attention: {a['account_id']} ({a['name']}): {a['reason']}")
        for a in document["ambiguous"]:
            print(
                f"ambiguous '{a['name']}': accounts {a['account_ids']},"
                f" customers {a['customer_ids']}"
            )
    return EXIT_OK
