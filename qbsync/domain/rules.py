"""The sync rules of a linked pair, per field (DOMAIN.md, "The product rules" 4 and 5).

First sync of a new link:
  one side only  -> copied to the empty side (either direction)
  both sides     -> Liscio's value overwrites QuickBooks' (when they differ)
Subsequent syncs:
  QuickBooks only -> nothing changes anywhere
  Liscio only     -> written to QuickBooks
  both sides      -> Liscio's value overwrites QuickBooks' (when they differ)
Names are never synced; equal values never cause a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from qbsync.domain.fields import FIELD_NAMES, FieldName, FieldValue, SyncedFields

Side = Literal["quickbooks", "liscio"]


@dataclass(frozen=True)
class FieldWrite:
    """One value to write on one side, and why."""

    field: FieldName
    side: Side
    old: FieldValue
    new: FieldValue
    reason: str


@dataclass(frozen=True)
class SyncPlan:
    writes: tuple[FieldWrite, ...] = field(default_factory=tuple)

    def for_side(self, side: Side) -> dict[FieldName, FieldValue]:
        return {w.field: w.new for w in self.writes if w.side == side}

    @property
    def to_quickbooks(self) -> dict[FieldName, FieldValue]:
        return self.for_side("quickbooks")

    @property
    def to_liscio(self) -> dict[FieldName, FieldValue]:
        return self.for_side("liscio")

    def __bool__(self) -> bool:
        return bool(self.writes)


def _liscio_wins(
    name: FieldName, liscio: FieldValue, quickbooks: FieldValue, why: str
) -> FieldWrite | None:
    if liscio == quickbooks:
        return None
    return FieldWrite(name, "quickbooks", quickbooks, liscio, why)


def first_sync(liscio: SyncedFields, quickbooks: SyncedFields) -> SyncPlan:
    writes: list[FieldWrite] = []
    for name in FIELD_NAMES:
        ours, theirs = liscio.get(name), quickbooks.get(name)
        if ours is None and theirs is None:
            continue
        if ours is None:
            writes.append(
                FieldWrite(name, "liscio", None, theirs, "first sync: value only in QuickBooks")
            )
        elif theirs is None:
            writes.append(
                FieldWrite(name, "quickbooks", None, ours, "first sync: value only in Liscio")
            )
        else:
            write = _liscio_wins(name, ours, theirs, "first sync: Liscio's value overwrites")
            if write:
                writes.append(write)
    return SyncPlan(tuple(writes))


def subsequent_sync(liscio: SyncedFields, quickbooks: SyncedFields) -> SyncPlan:
    writes: list[FieldWrite] = []
    for name in FIELD_NAMES:
        ours, theirs = liscio.get(name), quickbooks.get(name)
        if ours is None:
            continue  # QuickBooks-only values (or none at all) change nothing
        if theirs is None:
            writes.append(FieldWrite(name, "quickbooks", None, ours, "value only in Liscio"))
        else:
            write = _liscio_wins(name, ours, theirs, "Liscio's value overwrites")
            if write:
                writes.append(write)
    return SyncPlan(tuple(writes))
