"""qbsync usage [--month YYYY-MM] [--json]"""

from __future__ import annotations

import argparse
import calendar
from datetime import UTC, date, datetime

from qbsync.cli.base import EXIT_OK, Subparsers, database, print_json
from qbsync.config import Settings
from qbsync.db.quota import reads_by_month


def register(subparsers: Subparsers) -> None:
    usage = subparsers.add_parser(
        "usage",
        help="the month's metered QuickBooks reads against the app's allowance",
        description=(
            "Reads (query, read, CDC: the calls Intuit meters) per realm this month, their "
            "total against QBO_MONTHLY_READ_ALLOWANCE, and the month's total at this pace. "
            "Writes are not metered and not shown."
        ),
    )
    usage.add_argument("--month", help="YYYY-MM (default: this month, UTC)")
    usage.add_argument("--json", action="store_true", help="print one JSON document")
    usage.set_defaults(handler=run_usage)


def usage_report(
    realms: list[dict[str, object]], month: date, now: datetime, allowance: int
) -> dict[str, object]:
    """The figures `qbsync usage` shows (pure)."""
    total = sum(int(str(r["reads"])) for r in realms)
    days = calendar.monthrange(month.year, month.month)[1]
    this_month = (now.year, now.month) == (month.year, month.month)
    elapsed_days = (now.day - 1 + now.hour / 24 + now.minute / 1440) if this_month else days
    projected = round(total * days / elapsed_days) if elapsed_days > 0 else total
    return {
        "month": month.strftime("%Y-%m"),
        "realms": realms,
        "reads": total,
        "allowance": allowance,
        "fraction_used": round(total / allowance, 4) if allowance else None,
        "projected_reads": projected,
    }


async def run_usage(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(UTC)
    if args.month:
        month = datetime.strptime(args.month, "%Y-%m").date()
    else:
        month = now.date().replace(day=1)
    async with database(settings) as pool:
        realms = await reads_by_month(pool, month)
    report = usage_report(list(realms), month, now, settings.QBO_MONTHLY_READ_ALLOWANCE)
    if args.json:
        print_json(report)
        return EXIT_OK
    print(f"QuickBooks reads in {report['month']} (metered; writes are free)")
    for realm in realms:
        print(f"  realm {realm['realm_id']}: {realm['reads']:,}")
    print(
        f"total {report['reads']:,} of {report['allowance']:,}"
        f" ({100 * float(str(report['fraction_used'] or 0)):.2f} %);"
        f" at this pace {report['projected_reads']:,} by the month's end"
    )
    return EXIT_OK
