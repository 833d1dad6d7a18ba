"""`qbsync usage`: the month's metered reads against the allowance."""

from __future__ import annotations

from datetime import UTC, date, datetime

from qbsync.cli.usage import usage_report


def test_the_reads_of_every_realm_against_the_allowance_and_the_pace() -> None:
    realms: list[dict[str, object]] = [
        {"realm_id": "1", "reads": 1_000},
        {"realm_id": "2", "reads": 4_000},
    ]
    mid_month = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # 15 of November's 30 days gone

    report = usage_report(realms, date(2026, 11, 1), mid_month, 500_000)

    assert report["reads"] == 5_000
    assert report["fraction_used"] == 0.01
    assert report["projected_reads"] == 10_000


def test_a_past_month_is_projected_as_it_ended() -> None:
    report = usage_report([{"realm_id": "1", "reads": 48}], date(2026, 10, 1),
                          datetime(2026, 12, 6, tzinfo=UTC), 500_000)  # fmt: skip
    assert report["projected_reads"] == 48
