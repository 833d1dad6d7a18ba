"""QuickBooks Online's error answers, as the emulator sends them.

A request the service refuses raises `QboFault`; the routes turn it into the Fault body
QuickBooks sends (`{"Fault": {"Error": [...], "type": ...}, "time": ...}`) with its HTTP
status. Authentication failures use the lower-case `fault` shape QuickBooks' gateway sends.
"""

from __future__ import annotations

from typing import Any

from qbsync.emulator import clock

JsonObject = dict[str, Any]

VALIDATION = "ValidationFault"
SYSTEM = "SystemFault"
SERVICE = "SERVICE"

_INACTIVE_HINT = (
    "Something you're trying to use has been made inactive. "
    "Check the fields with accounts, customers, items, vendors or employees."
)


class QboFault(Exception):
    """One error as QuickBooks reports it."""

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        status: int = 400,
        fault_type: str = VALIDATION,
        element: str = "",
    ) -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.fault_type = fault_type
        self.element = element

    def fault(self) -> JsonObject:
        """The `Fault` object (also what a batch item carries)."""
        return {
            "Error": [
                {
                    "Message": self.message,
                    "Detail": self.detail,
                    "code": self.code,
                    "element": self.element,
                }
            ],
            "type": self.fault_type,
        }

    def body(self, at: float | None = None) -> JsonObject:
        return {
            "Fault": self.fault(),
            "time": clock.response_time(clock.now() if at is None else at),
        }


def invalid_property(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{detail} specified is unsupported or invalid",
        element=element,
    )


def required_missing(detail: str, element: str = "") -> QboFault:
    return QboFault(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {detail} is missing in the request",
        element=element,
    )


def invalid_reference(entity: str, ref_id: str) -> QboFault:
    return QboFault(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {entity} assigned to this transaction has been deleted or does "
        f"not exist (Id={ref_id}). {_INACTIVE_HINT}",
    )


def object_not_found(entity: str, entity_id: str) -> QboFault:
    return QboFault(
        "610",
        "Object Not Found",
        f"Object Not Found : {_INACTIVE_HINT} ({entity} Id={entity_id})",
    )


def stale_object(entity: str, entity_id: str) -> QboFault:
    return QboFault(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and QuickBooks User worked on {entity} (Id={entity_id}) at the "
        "same time. QuickBooks User finished before you did, so your work was not saved.",
    )


def duplicate_name(existing_id: str) -> QboFault:
    return QboFault(
        "6240",
        "Duplicate Name Exists Error",
        "The name supplied already exists. : Another customer, vendor or employee is already "
        f"using this name. Please use a different name. Id={existing_id}",
    )


def query_parse_error(detail: str) -> QboFault:
    return QboFault("4000", "Error parsing query", f"QueryParserError: {detail}")


def query_invalid(detail: str) -> QboFault:
    return QboFault("4001", "Invalid query", f"QueryValidationError: {detail}")


def unsupported(detail: str) -> QboFault:
    return QboFault("500", "Unsupported Operation", f"Operation {detail} is not supported.")


def business_rule(code: str, message: str, detail: str) -> QboFault:
    return QboFault(code, message, detail)


def system_failure() -> QboFault:
    return QboFault(
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your "
        "data. Please wait a few minutes and try again. If the problem persists, contact "
        "customer support.",
        status=500,
        fault_type=SYSTEM,
    )


def throttled() -> QboFault:
    """HTTP 429. The error's `code` is "3001"; its message carries errorCode=003001."""
    return QboFault(
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.  Try again later",
        status=429,
        fault_type=SERVICE,
    )


def authorization_failed(detail: str) -> QboFault:
    """HTTP 403: a valid token used on a company it was not issued for."""
    return QboFault(
        "3100",
        "message=AuthorizationFailed; errorCode=003100; statusCode=403",
        detail,
        status=403,
        fault_type=SERVICE,
    )


def authentication_failed_body(detail: str) -> JsonObject:
    """HTTP 401 body; the gateway answers with lower-case keys and no `time`."""
    return {
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": detail,
                    "code": "3200",
                }
            ],
            "type": "SERVICE",
        }
    }
