"""qbsync lag [--json] [--watch]"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from rich import box
from rich.console import Console
from rich.live import Live
from rich.table import Table

from qbsync.cli.base import EXIT_OK, Subparsers, print_json
from qbsync.config import Settings
from qbsync.errors import DependencyUnavailable
from qbsync.kafka.lag import LagReport, RateTracker, build_report
from qbsync.kafka.offsets import OffsetsCollector

WATCH_RATE_WINDOW_SECONDS = 60.0


def register(subparsers: Subparsers) -> None:
    lag = subparsers.add_parser(
        "lag",
        help="consumer lag per group, topic and partition",
        description=(
            "Committed offset, end offset and lag of every consumer group (with the "
            "QBSYNC_TOPIC_PREFIX) on every partition it consumes, and the estimated time to "
            "catch up at the rate the group is consuming."
        ),
    )
    mode = lag.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print one JSON document")
    mode.add_argument("--watch", action="store_true", help="redraw in place until Ctrl-C")
    lag.add_argument(
        "--sample-seconds",
        type=float,
        default=1.0,
        help="measure the consumption rate over this long (0: no rate, no catch-up time)",
    )
    lag.add_argument(
        "--interval", type=float, default=2.0, help="seconds between redraws with --watch"
    )
    lag.add_argument(
        "--group",
        action="append",
        default=[],
        help="only this group, named with or without the prefix (repeatable)",
    )
    lag.set_defaults(handler=run_lag)


async def run_lag(args: argparse.Namespace, settings: Settings) -> int:
    collector = OffsetsCollector(settings.KAFKA_BOOTSTRAP_SERVERS, settings.QBSYNC_TOPIC_PREFIX)
    async with collector:
        await collector.start(attempts=min(3, settings.QBSYNC_CONNECT_ATTEMPTS))
        if args.watch:
            groups = _full_names(args.group, settings.QBSYNC_TOPIC_PREFIX)
            await _watch(collector, args.interval, groups, settings.QBSYNC_TOPIC_PREFIX)
            return EXIT_OK
        report = await _sample(collector, args.sample_seconds)
    report = _only(report, _full_names(args.group, settings.QBSYNC_TOPIC_PREFIX))
    if args.json:
        print_json(report.to_json())
    else:
        Console().print(lag_table(report, settings.QBSYNC_TOPIC_PREFIX))
    return EXIT_OK


async def _sample(collector: OffsetsCollector, seconds: float) -> LagReport:
    rates = RateTracker(window_seconds=max(seconds, 0.0) + 1.0)
    first = await collector.collect()
    rates.add(first)
    if seconds <= 0:
        return build_report(first)
    await asyncio.sleep(seconds)  # the rate is measured over this interval
    last = await collector.collect()
    rates.add(last)
    return build_report(last, rates)


async def _watch(
    collector: OffsetsCollector, interval: float, groups: set[str], prefix: str
) -> None:
    rates = RateTracker(window_seconds=WATCH_RATE_WINDOW_SECONDS)
    snapshot = await collector.collect()
    rates.add(snapshot)
    with Live(
        lag_table(_only(build_report(snapshot, rates), groups), prefix), auto_refresh=False
    ) as live:
        while True:
            await asyncio.sleep(interval)
            try:
                snapshot = await collector.collect()
            except DependencyUnavailable as exc:
                # Keep the last table on screen and say why it is not moving; try again.
                table = lag_table(_only(build_report(snapshot, rates), groups), prefix)
                table.caption = f"[red]{exc}; retrying every {interval:g}s[/red]"
                live.update(table, refresh=True)
                continue
            rates.add(snapshot)
            live.update(
                lag_table(_only(build_report(snapshot, rates), groups), prefix), refresh=True
            )


def _full_names(groups: list[str], prefix: str) -> set[str]:
    return {group if group.startswith(prefix) else prefix + group for group in groups}


def _only(report: LagReport, groups: set[str]) -> LagReport:
    if not groups:
        return report
    kept = tuple(g for g in report.groups if g.group in groups)
    return LagReport(report.taken_at, kept, report.rate_window_seconds)


def lag_table(report: LagReport, prefix: str = "") -> Table:
    """One row per group (its totals), then one per partition. Names lose the prefix,
    which the title shows once, so the table fits a terminal."""
    collected = datetime.fromtimestamp(report.taken_at, UTC).strftime("%H:%M:%S UTC")
    window = report.rate_window_seconds
    rates = f"rates over {window:.1f}s" if window else "no rate measured"
    scope = f", prefix {prefix}" if prefix else ""
    table = Table(
        title=f"consumer lag at {collected} ({rates}{scope})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("group / topic", overflow="fold", min_width=26)
    for column in ("part", "committed", "end", "lag", "msg/s", "catch-up"):
        table.add_column(column, justify="right", no_wrap=True)
    if not report.groups:
        table.add_row("(no consumer groups)", "", "", "", "", "", "")
    for group in report.groups:
        table.add_row(
            f"[bold]{group.group.removeprefix(prefix)}[/bold]",
            "",
            "",
            "",
            f"[bold]{group.lag}[/bold]",
            format_rate(group.consumption_rate),
            format_catch_up(group.lag, group.consumption_rate, group.catch_up_seconds),
        )
        for row in group.partitions:
            table.add_row(
                "  " + row.topic.removeprefix(prefix),
                str(row.partition),
                "-" if row.committed_offset is None else str(row.committed_offset),
                str(row.end_offset),
                f"[red]{row.lag}[/red]" if row.lag else "0",
                format_rate(row.consumption_rate),
                format_catch_up(row.lag, row.consumption_rate, row.catch_up_seconds),
            )
    return table


def format_rate(rate: float | None) -> str:
    return "?" if rate is None else f"{rate:.1f}"


def format_catch_up(lag: int, rate: float | None, seconds: float | None) -> str:
    if lag <= 0:
        return "-"
    if seconds is None:
        return "?" if rate is None else "stalled"
    return format_duration(seconds)


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
