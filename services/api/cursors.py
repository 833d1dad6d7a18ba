"""Opaque page cursors: the key a page ends at, as URL-safe base64 of its JSON. A cursor
that does not decode is a value of the wrong format: 422."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.api.problems import Problem


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The key's parts, each of the type `shape` names."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    valid = (
        isinstance(key, list)
        and len(key) == len(shape)
        and all(type(part) is kind for part, kind in zip(key, shape, strict=True))
        and not any(isinstance(part, str) and "\x00" in part for part in key)
    )
    if not valid:
        raise Problem(422, "Unprocessable Content", "cursor: not a cursor this API gave")
    assert isinstance(key, list)
    return key
