"""QuickBooks' answers as typed exceptions.

QuickBooks reports errors as a Fault body, in two spellings:
`{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}}` from the data API and
`{"fault": {"error": [{"message", "detail", "code"}], "type"}}` on some 401s. The OAuth endpoint
answers `{"error": "invalid_grant"}` instead. Parsing is pure; the client decides what to raise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qbsync.errors import QbsyncError, RecordRefused, Transient


class QuickBooksError(QbsyncError):
    """Base of every QuickBooks failure. str() names the realm, the operation and the code."""

    def __init__(
        self,
        *,
        realm_id: str,
        operation: str,
        code: str | None = None,
        message: str = "",
        detail: str = "",
        status: int | None = None,
    ) -> None:
        self.realm_id = realm_id
        self.operation = operation
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"QuickBooks {self.operation} for realm {self.realm_id} failed"
        if self.code:
            text += f" with code {self.code}"
        if self.status is not None:
            text += f" (HTTP {self.status})"
        reason = ": ".join(part for part in (self.message, self.detail) if part)
        return f"{text}: {reason}" if reason else text


class QuickBooksUnavailable(QuickBooksError, Transient):
    """QuickBooks did not do the work for now (throttled, failing, not answering) even
    after the client's own attempts: the work waits and is done again."""


class QuickBooksRefusal(QuickBooksError, RecordRefused):
    """QuickBooks refused this record: recorded on the account as `attention`."""


class DuplicateNameError(QuickBooksRefusal):
    """6240: another customer, vendor or employee already has this DisplayName (any case)."""


class StaleObjectError(QuickBooksError):
    """5010: the SyncToken sent is not the current one (the client re-reads and retries)."""


class ObjectNotFoundError(QuickBooksRefusal):
    """610: no such object, or it is inactive."""


class QuickBooksValidationError(QuickBooksRefusal):
    """Any other 4xx QuickBooks refused; never retried."""


class AuthenticationError(QuickBooksError):
    """3200/401 even after one refresh and retry, or the OAuth client itself was refused."""


class ThrottledError(QuickBooksUnavailable):
    """429 (003001) still answered after every retry."""


class NeedsReconnectError(QuickBooksError):
    """The refresh token is gone (invalid_grant): a person must reconnect the firm."""


class NotConnectedError(NeedsReconnectError):
    """No stored connection for this realm at all."""


class ServerError(QuickBooksUnavailable):
    """5xx still answered after every retry, or an answer that is not the JSON promised."""


class TransportError(QuickBooksUnavailable):
    """No answer (connection refused or dropped, timeout) after every retry."""


# Codes compared without leading zeros: QuickBooks writes both "3001" and "003001".
_ERRORS_BY_CODE: dict[str, type[QuickBooksError]] = {
    "6240": DuplicateNameError,
    "5010": StaleObjectError,
    "610": ObjectNotFoundError,
    "3200": AuthenticationError,
    "3001": ThrottledError,
}


@dataclass(frozen=True)
class Fault:
    """The first error of a Fault body (QuickBooks lists the cause first)."""

    code: str | None
    message: str
    detail: str
    fault_type: str | None


def _ci_get(mapping: Mapping[str, Any], key: str) -> Any:
    """QuickBooks spells Fault/Error/Message both capitalised and not."""
    if key in mapping:
        return mapping[key]
    lowered = key.lower()
    for candidate, value in mapping.items():
        if candidate.lower() == lowered:
            return value
    return None


def parse_fault(body: object) -> Fault | None:
    """The Fault in a decoded response body, or None when the body carries none."""
    if not isinstance(body, Mapping):
        return None
    fault = _ci_get(body, "Fault")
    if isinstance(fault, Mapping):
        errors = _ci_get(fault, "Error")
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, Mapping) else {}
        code = _ci_get(first, "code")
        fault_type = _ci_get(fault, "type")
        return Fault(
            code=str(code) if code is not None else None,
            message=str(_ci_get(first, "Message") or ""),
            detail=str(_ci_get(first, "Detail") or ""),
            fault_type=str(fault_type) if fault_type is not None else None,
        )
    oauth_error = body.get("error")
    if isinstance(oauth_error, str):
        description = body.get("error_description")
        return Fault(
            code=oauth_error,
            message=oauth_error,
            detail=str(description) if description else "",
            fault_type="OAuth",
        )
    return None


def error_class_for(status: int, code: str | None) -> type[QuickBooksError]:
    """Which exception an HTTP status plus QuickBooks code becomes (after retries ran out)."""
    if code is not None:
        known = _ERRORS_BY_CODE.get(code.lstrip("0"))
        if known is not None:
            return known
    if status == 401:
        return AuthenticationError
    if status == 429:
        return ThrottledError
    if status >= 500:
        return ServerError
    return QuickBooksValidationError


def error_from_response(
    *, realm_id: str, operation: str, status: int, body: object
) -> QuickBooksError:
    """The typed exception for a failed answer, carrying its code, message and detail."""
    fault = parse_fault(body)
    code = fault.code if fault else None
    cls = error_class_for(status, code)
    return cls(
        realm_id=realm_id,
        operation=operation,
        code=code,
        message=fault.message if fault else "",
        detail=fault.detail if fault else "",
        status=status,
    )
