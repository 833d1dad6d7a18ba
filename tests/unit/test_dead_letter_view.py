"""How `qbsync dlq` presents a dead letter (pure)."""

from __future__ import annotations

import base64

from qbsync.kafka.dead_letter_view import decode_value, parse_dead_letter
from schemas import DeadLetter


def letter_bytes(original: bytes) -> bytes:
    return (
        DeadLetter(
            error="schema violation: value: Invalid JSON",
            topic="liscio.account-events",
            partition=3,
            offset=41,
            value_b64=base64.b64encode(original).decode(),
            service="matcher",
            at="2026-11-25T16:00:00Z",  # type: ignore[arg-type]
        )
        .model_dump_json()
        .encode()
    )


def test_details_show_reason_source_and_decoded_original_value() -> None:
    stored = parse_dead_letter(0, 7, b"f-1:a-2", letter_bytes(b'{"event_id": "e"}'), False)
    details = stored.details()
    assert details["offset"] == 7 and details["key"] == "f-1:a-2"
    assert details["reason"] == "schema violation: value: Invalid JSON"
    assert details["service"] == "matcher" and details["redriven"] is False
    assert details["source"] == {"topic": "liscio.account-events", "partition": 3, "offset": 41}
    assert details["value"] == {"encoding": "json", "data": {"event_id": "e"}}
    assert stored.original_value == b'{"event_id": "e"}'


def test_original_values_that_are_not_json_or_not_text_stay_readable() -> None:
    assert decode_value(b"{not json") == {"encoding": "text", "data": "{not json"}
    assert decode_value(b"\xff\x00") == {"encoding": "base64", "data": "/wA="}


def test_an_unreadable_dead_letter_is_reported_not_fatal() -> None:
    stored = parse_dead_letter(0, 2, None, b"garbage", True)
    assert stored.letter is None and stored.original_value is None
    summary = stored.summary()
    assert summary["reason"].startswith("unreadable dead letter")
    assert summary["key"] == "" and summary["redriven"] is True
