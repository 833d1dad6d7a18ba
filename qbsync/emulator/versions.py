"""What every entity's update shares: QuickBooks' checks of the Id and SyncToken sent, and
which writable fields a sparse or a full update leaves; and `Writes`, the read, create and
update of an entity whose rows are assembled from their writable fields (items, invoices)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.emulator import clock
from qbsync.emulator.errors import (
    invalid_property,
    object_not_found,
    required_missing,
    stale_object,
)
from qbsync.emulator.realm import EntityTable, JsonObject, Realm
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


# (realm, id, writable fields, the stored row it replaces or None, time) -> the new row.
Assemble = Callable[[Realm, str, JsonObject, JsonObject | None, float], JsonObject]
# (realm, new row, the stored row it replaces or None): keep it, and what follows from it.
Store = Callable[[Realm, JsonObject, JsonObject | None], None]


def keep(table: Callable[[Realm], EntityTable]) -> Store:
    """The store of an entity that nothing else follows: the row into its table."""

    def store(realm: Realm, row: JsonObject, previous: JsonObject | None) -> None:
        table(realm).rows[row["Id"]] = row

    return store


@dataclass(frozen=True)
class Writes:
    """Read, create and update of one entity type: the body normalized to its `shape`,
    the `fields` a client may write assembled into the row, stored, and the change noted
    for CDC and webhooks."""

    shape: Struct
    fields: Mapping[str, FieldType]
    table: Callable[[Realm], EntityTable]
    assemble: Assemble
    store: Store

    def read(self, realm: Realm, entity_id: str) -> JsonObject:
        row = self.table(realm).rows.get(entity_id)
        if row is None:
            raise object_not_found(self.shape.name, entity_id)
        return row

    def create(self, realm: Realm, body: Any, at: float) -> JsonObject:
        fields = writable(self.shape.normalize(body, "") or {}, self.fields)
        entity_id = self.table(realm).allocate_id()
        row = self.assemble(realm, entity_id, fields, None, at)
        self.store(realm, row, None)
        realm.changed(self.shape.name, entity_id, "Create", at)
        return row

    def update(self, realm: Realm, body: Any, at: float) -> JsonObject:
        previous, fields = update_of(
            body, self.shape, self.fields, lambda entity_id: self.read(realm, entity_id)
        )
        entity_id = previous["Id"]
        row = self.assemble(realm, entity_id, fields, previous, at)
        self.store(realm, row, previous)
        realm.changed(self.shape.name, entity_id, "Update", at)
        return row
