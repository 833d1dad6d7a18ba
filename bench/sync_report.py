"""The Sync Now benchmark's figures: rates from counts and timestamps, each against its
target, printed as a table (pure: no I/O, so the arithmetic is tested on its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


def seconds_between(start: datetime | float, end: datetime | float) -> float:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, float | int) and isinstance(end, float | int):
        return float(end) - float(start)
    raise TypeError("both ends must be datetimes or both epoch seconds")


def rate(records: int, seconds: float) -> float:
    """Records per second; a span of no time at all has no rate."""
    if seconds <= 0:
        raise ValueError(f"a rate needs a positive span, not {seconds}")
    return records / seconds


@dataclass(frozen=True)
class Figure:
    """One measured figure. `at_least`: the target is a floor (rates), else a ceiling
    (memory); `ratio` is measured / target either way."""

    name: str
    value: float
    unit: str
    target: float | None = None
    at_least: bool = True
    detail: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.target is None else self.value / self.target

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.at_least else self.value < self.target

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "unit": self.unit,
            "target": self.target,
            "target_is": None if self.target is None else ("min" if self.at_least else "max"),
            "ratio_to_target": None if self.ratio is None else round(self.ratio, 3),
            "met": self.met,
            "detail": self.detail,
        }


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def table(figures: list[Figure]) -> str:
    """A fixed-width table: figure, value, target, ratio to target, met, detail."""
    header = ("figure", "measured", "target", "ratio", "met", "how")
    rows = [header]
    for f in figures:
        target = "" if f.target is None else ("≥ " if f.at_least else "< ") + _number(f.target)
        rows.append(
            (
                f.name,
                f"{_number(f.value)} {f.unit}",
                target,
                "" if f.ratio is None else f"{f.ratio:.2f}",
                {True: "yes", False: "NO", None: ""}[f.met],
                f.detail,
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
