"""Every QuickBooks API request the emulator saw, for tests and benchmarks to inspect."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

KEPT_ENTRIES = 200_000


@dataclass
class LoggedRequest:
    seq: int
    method: str
    path: str
    realm_id: str | None
    request_id: str | None
    operation: str
    started_at: float
    in_flight_at_arrival: int  # requests of the realm already in flight when this one came
    status: int | None = None  # None while in flight
    finished_at: float | None = None
    dropped: bool = False  # the connection was closed instead of answering
    cost: int = 1  # units counted against the rate window (batch items)
    # A write's JSON body as received (what it asked QuickBooks to store), so a test or a
    # benchmark can tie each write to the change it carried; None for reads.
    write_body: Any = None

    def as_dict(self) -> dict[str, Any]:
        # A shallow copy: dataclasses.asdict deep-copies every write body, and the admin
        # API serialises up to KEPT_ENTRIES of these at once.
        return dict(vars(self))


class RequestLog:
    def __init__(self, kept: int = KEPT_ENTRIES) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=kept)
        self._next_seq = 1

    def start(
        self,
        *,
        method: str,
        path: str,
        realm_id: str | None,
        request_id: str | None,
        operation: str,
        started_at: float,
        in_flight_at_arrival: int,
    ) -> LoggedRequest:
        entry = LoggedRequest(
            seq=self._next_seq,
            method=method,
            path=path,
            realm_id=realm_id,
            request_id=request_id,
            operation=operation,
            started_at=started_at,
            in_flight_at_arrival=in_flight_at_arrival,
        )
        self._next_seq += 1
        self._entries.append(entry)
        return entry

    def entries(self, realm_id: str | None = None, since_seq: int = 0) -> list[LoggedRequest]:
        return [
            entry
            for entry in self._entries
            if entry.seq > since_seq and (realm_id is None or entry.realm_id == realm_id)
        ]

    def clear(self, realm_id: str | None = None) -> None:
        if realm_id is None:
            self._entries.clear()
        else:
            kept = [entry for entry in self._entries if entry.realm_id != realm_id]
            self._entries.clear()
            self._entries.extend(kept)
