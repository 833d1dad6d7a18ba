"""Time as QuickBooks Online writes it: the company's local time with its UTC offset.

Sandbox companies live in US Pacific time, so MetaData times look like
`2026-11-25T08:00:00-08:00` and a response's `time` like `2026-11-25T08:00:00.123-08:00`.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

COMPANY_TIMEZONE = ZoneInfo("America/Los_Angeles")


def now() -> float:
    """Seconds since the epoch; every timestamp the emulator keeps is one of these."""
    return time.time()


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, COMPANY_TIMEZONE)


def metadata_time(epoch: float) -> str:
    """MetaData.CreateTime / LastUpdatedTime: whole seconds with the offset."""
    return to_datetime(epoch).isoformat(timespec="seconds")


def response_time(epoch: float) -> str:
    """The `time` of a response: milliseconds with the offset."""
    return to_datetime(epoch).isoformat(timespec="milliseconds")


def company_date(epoch: float, days_later: int = 0) -> str:
    return (to_datetime(epoch).date() + timedelta(days=days_later)).isoformat()


def parse_time(text: str) -> float:
    """An ISO date or date-time as QuickBooks accepts it in `changedSince` and queries.

    A date-time without an offset is the company's local time; a bare date is its midnight.
    Raises ValueError when the text is neither.
    """
    stripped = text.strip()
    if len(stripped) == 10:
        day = date.fromisoformat(stripped)
        return datetime(day.year, day.month, day.day, tzinfo=COMPANY_TIMEZONE).timestamp()
    parsed = datetime.fromisoformat(stripped)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=COMPANY_TIMEZONE)
    return parsed.astimezone(UTC).timestamp()
