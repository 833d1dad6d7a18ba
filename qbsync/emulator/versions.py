"""What every entity's update shares: QuickBooks' checks of the Id and SyncToken sent, and
which writable fields a sparse or a full update leaves."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from qbsync.emulator import clock
from qbsync.emulator.errors import invalid_property, required_missing, stale_object
from qbsync.emulator.realm import JsonObject
from qbsync.emulator.schema import FieldType, Struct


def next_version(previous: JsonObject | None, at: float) -> JsonObject:
    """`SyncToken` and `MetaData` of a row written at `at`: version 0 and both times on
    create; on update the next version and a new LastUpdatedTime."""
    return {
        "SyncToken": "0" if previous is None else str(int(previous["SyncToken"]) + 1),
        "MetaData": {
            "CreateTime": previous["MetaData"]["CreateTime"]
            if previous
            else clock.metadata_time(at),
            "LastUpdatedTime": clock.metadata_time(at),
        },
    }


def writable(source: JsonObject, fields: Mapping[str, FieldType]) -> JsonObject:
    """A copy of the fields of `source` a client may set."""
    return {key: copy.deepcopy(value) for key, value in source.items() if key in fields}


def update_of(
    body: Any,
    shape: Struct,
    fields: Mapping[str, FieldType],
    read: Callable[[str], JsonObject],
) -> tuple[JsonObject, JsonObject]:
    """(the stored row the update names, its writable fields after the update). The body
    must name the row (`Id`) and its current version (`SyncToken`: 5010 when stale). A
    sparse update changes only the fields sent (null clears one); a full update keeps only
    the fields sent, but `Active` stays as it was when left out."""
    if not isinstance(body, dict):
        raise invalid_property(f"body (expected a {shape.name} object)")
    normalized = shape.normalize(body, "") or {}
    entity_id = normalized.get("Id")
    if entity_id is None:
        raise required_missing("Id")
    if normalized.get("SyncToken") is None:
        raise required_missing("SyncToken")
    previous = read(entity_id)
    if str(normalized["SyncToken"]) != previous["SyncToken"]:
        raise stale_object(shape.name, entity_id)
    if normalized.get("sparse"):
        after = writable(previous, fields)
        for key in body:
            if key in fields:
                if key in normalized:
                    after[key] = normalized[key]
                else:
                    after.pop(key, None)
    else:
        after = writable(normalized, fields)
        if "Active" in fields and "Active" in previous:
            after.setdefault("Active", previous["Active"])
    return previous, after
