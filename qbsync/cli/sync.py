"""qbsync sync / replay / links"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from qbsync.cli.base import EXIT_FAILURE, EXIT_OK, Subparsers, database, print_json
from qbsync.config import Settings
from qbsync.db.accounts import accounts_needing_attention
from qbsync.db.customers import count_seen_in_run
from qbsync.db.links import ambiguities_of_firm, links_of_firm
from qbsync.db.pool import Pool
from qbsync.db.runs import STEPS, run_of_request, run_report
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
    replay.add_argument(
        "--wait",
        action="store_true",
        help="return when every firm's run has ended (on a terminal: always, with progress)",
    )
    replay.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds --wait waits at most"
    )
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


OnReport = Callable[[dict[str, Any] | None], Awaitable[None]]


async def wait_for_run(
    pool: Pool,
    request: SyncRequest,
    *,
    until_finished: bool,
    timeout: float,
    progress: OnReport | None = None,
) -> dict[str, Any] | None:
    """The request's run once it exists (and, `until_finished`, has ended). PostgreSQL
    restarting meanwhile is waited out like the services do, with one line when it goes
    and one when it is back: the run goes on without us. `progress` sees every report
    read on the way (None until the run exists)."""
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
        if progress is not None:
            await progress(report)
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


def on_terminal(args: argparse.Namespace) -> bool:
    """Whether to draw live progress: a person watches, and asked for no JSON."""
    return not args.json and sys.stdout.isatty()


async def with_live_counts(pool: Pool, report: dict[str, Any]) -> dict[str, Any]:
    """The report with what its steps' counts do not say until they end: while the
    customers of the import reach the matcher, how many it has stored so far."""
    steps = report["steps"]
    waiting = steps.get("match", {}).get("status") in ("pending", "running")
    if report["realm_id"] and waiting and report["status"] in ("pending", "running"):
        stored = await count_seen_in_run(pool, report["realm_id"], report["run_id"])
        report = {**report, "stored_customers": stored}
    return report


def run_table(report: dict[str, Any] | None, request: SyncRequest) -> Table | Text:
    """The three steps of a run and their counts, as `sync --wait` draws them live."""
    if report is None:
        return Text(f"sync of firm {request.firm_id} requested: waiting for the run to open")
    table = Table(
        min_width=70,
        title=f"run {report['run_id']} of firm {report['firm_id']}: {report['status']}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("step", "status", "counts"):
        table.add_column(column)
    for step in STEPS:
        info = report["steps"].get(step, {"status": "pending", "counts": {}})
        counts = ", ".join(f"{k} {v}" for k, v in info["counts"].items())
        if step == "match" and "stored_customers" in report:
            imported = report["steps"]["import"]["counts"].get("customers")
            of = f" of {imported}" if imported is not None else ""
            counts = f"customers stored {report['stored_customers']}{of}"
        table.add_row(step, info["status"], counts)
    if report.get("reason"):
        table.caption = f"reason: {report['reason']}"
    return table


async def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    async with database(settings) as pool:
        (request,) = await request_syncs(settings, [args.firm], "sync")
        timeout = args.timeout if args.wait else APPEAR_TIMEOUT
        if args.wait and on_terminal(args):
            with Live(run_table(None, request), auto_refresh=False) as screen:

                async def draw(report: dict[str, Any] | None) -> None:
                    if report is not None:
                        report = await with_live_counts(pool, report)
                    screen.update(run_table(report, request), refresh=True)

                report = await wait_for_run(
                    pool, request, until_finished=True, timeout=timeout, progress=draw
                )
            if report is not None:
                return EXIT_OK if report["status"] == "done" else EXIT_FAILURE
        else:
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
    if not args.wait and not on_terminal(args):
        if args.json:
            print_json([{"firm_id": r.firm_id, "request_id": r.request_id} for r in requests])
        else:
            print(f"replay requested for {len(requests)} firm(s)")
        return EXIT_OK
    async with database(settings) as pool:
        ended = await follow_replays(pool, requests, args.timeout, show=on_terminal(args))
    failed = [r for r in ended.values() if r is not None and r["status"] == "failed"]
    unfinished = [firm for firm, report in ended.items() if report is None]
    if args.json:
        print_json(
            [
                {"firm_id": firm, "run_id": r and r["run_id"], "status": r and r["status"]}
                for firm, r in ended.items()
            ]
        )
    else:
        print(
            f"replayed {len(ended) - len(unfinished)} of {len(ended)} firm(s):"
            f" {len(failed)} failed, {len(unfinished)} not finished within {args.timeout:g}s"
        )
        for report in failed:
            print(f"  {report['firm_id']}: failed: {report['reason']}")
    return EXIT_FAILURE if failed or unfinished else EXIT_OK


async def follow_replays(
    pool: Pool, requests: list[SyncRequest], timeout: float, *, show: bool
) -> dict[str, dict[str, Any] | None]:
    """Every firm's run once it ended (None: not within `timeout`); on a terminal, a bar
    of the firms done out of the total."""
    ended: dict[str, dict[str, Any] | None] = {r.firm_id: None for r in requests}
    with Progress(
        TextColumn("replay: firms done"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(),
        disable=not show,
    ) as bar:
        task = bar.add_task("firms", total=len(requests))

        async def follow(request: SyncRequest) -> None:
            report = await wait_for_run(pool, request, until_finished=True, timeout=timeout)
            ended[request.firm_id] = report
            if report is not None:
                bar.advance(task)

        await asyncio.gather(*(follow(request) for request in requests))
    return ended


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
