"""Why a use case a person asked for (through the API) does not do it. Each is raised
before anything is written; the API answers each with a problem+json of its status."""

from __future__ import annotations

from typing import Any

from qbsync.errors import QbsyncError


class Refused(QbsyncError):
    """`details`: ids the answer names (e.g. the account a customer is linked to)."""

    status = 409

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class UnknownRecord(Refused):
    """An id names nothing (of this firm)."""

    status = 404


class ConflictingState(Refused):
    """The records' current state forbids it: already linked, not linked, archived,
    inactive, not connected, a name QuickBooks already has."""

    status = 409


class RefusedByQuickBooks(Refused):
    """QuickBooks refused the values themselves (a validation error other than the name)."""

    status = 422
