"""What an operator sees of one dead letter (pure: parsing and presenting, no I/O)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from schemas import DeadLetter


@dataclass(frozen=True)
class StoredDeadLetter:
    """One message of a `<topic>.dlq` topic, where it sits there, and whether it was redriven."""

    partition: int
    offset: int
    key: str
    letter: DeadLetter | None  # None when the dead-letter value itself cannot be read
    problem: str | None  # why it cannot be read
    redriven: bool

    @property
    def original_value(self) -> bytes | None:
        if self.letter is None:
            return None
        try:
            return base64.b64decode(self.letter.value_b64, validate=True)
        except (binascii.Error, ValueError):
            return None

    def summary(self) -> dict[str, Any]:
        """The fields `qbsync dlq list` shows."""
        letter = self.letter
        return {
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "reason": letter.error if letter else f"unreadable dead letter: {self.problem}",
            "service": letter.service if letter else None,
            "at": letter.at.isoformat() if letter else None,
            "redriven": self.redriven,
        }

    def details(self) -> dict[str, Any]:
        """Everything `qbsync dlq show` shows, the original value decoded."""
        letter = self.letter
        document = self.summary()
        document["source"] = (
            {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset}
            if letter
            else None
        )
        original = self.original_value
        document["value"] = None if original is None else decode_value(original)
        return document


def parse_dead_letter(
    partition: int, offset: int, key: bytes | None, value: bytes | None, redriven: bool
) -> StoredDeadLetter:
    text_key = (key or b"").decode(errors="replace")
    try:
        letter = DeadLetter.model_validate_json(value or b"")
    except ValidationError as exc:
        problem = "; ".join(e["msg"] for e in exc.errors()[:3])
        return StoredDeadLetter(partition, offset, text_key, None, problem, redriven)
    return StoredDeadLetter(partition, offset, text_key, letter, None, redriven)


def decode_value(raw: bytes) -> dict[str, Any]:
    """The original message as a person can read it: JSON when it parses, else the text,
    else base64 (it may be anything: it was dead-lettered for not being what we expect)."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(raw).decode()}
    try:
        return {"encoding": "json", "data": json.loads(text)}
    except ValueError:
        return {"encoding": "text", "data": text}
