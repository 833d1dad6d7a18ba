"""Fault parsing, error classes and the retry delays (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qbsync.errors import QbsyncError
from qbsync.quickbooks.backoff import RetryPolicy, parse_retry_after
from qbsync.quickbooks.errors import (
    AuthenticationError,
    DuplicateNameError,
    ObjectNotFoundError,
    QuickBooksError,
    QuickBooksValidationError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    error_from_response,
    parse_fault,
)


def test_parse_fault_reads_the_capitalised_shape() -> None:
    body = {
        "Fault": {
            "Error": [
                {"Message": "Stale Object Error", "Detail": "edited", "code": "5010", "element": ""}
            ],
            "type": "ValidationFault",
        },
        "time": "2026-11-25T08:00:00.000-08:00",
    }
    fault = parse_fault(body)
    assert fault is not None
    assert (fault.code, fault.message, fault.detail, fault.fault_type) == (
        "5010",
        "Stale Object Error",
        "edited",
        "ValidationFault",
    )


def test_parse_fault_reads_the_lower_case_401_shape() -> None:
    body = {
        "fault": {
            "error": [
                {
                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    "detail": "Token expired: ...",
                    "code": "3200",
                }
            ],
            "type": "SERVICE",
        }
    }
    fault = parse_fault(body)
    assert fault is not None and fault.code == "3200" and fault.detail == "Token expired: ..."


def test_parse_fault_reads_oauth_errors_and_ignores_other_bodies() -> None:
    fault = parse_fault({"error": "invalid_grant", "error_description": "expired"})
    assert fault is not None and fault.code == "invalid_grant" and fault.detail == "expired"
    assert parse_fault({"Customer": {}}) is None
    assert parse_fault(None) is None
    assert parse_fault(["x"]) is None
    empty = parse_fault({"Fault": {"Error": []}})
    assert empty is not None and empty.code is None


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "6240", DuplicateNameError),
        (400, "5010", StaleObjectError),
        (400, "610", ObjectNotFoundError),
        (401, "3200", AuthenticationError),
        (401, None, AuthenticationError),
        (429, "003001", ThrottledError),
        (429, None, ThrottledError),
        (500, None, ServerError),
        (503, "10000", ServerError),
        (400, "2010", QuickBooksValidationError),
        (404, None, QuickBooksValidationError),
    ],
)
def test_error_classes(status: int, code: str | None, expected: type[QuickBooksError]) -> None:
    body = {"Fault": {"Error": [{"code": code, "Message": "m"}]}} if code else "not json"
    error = error_from_response(realm_id="r1", operation="op", status=status, body=body)
    assert type(error) is expected
    assert isinstance(error, QbsyncError)
    assert error.status == status and error.code == code


def test_error_text_names_realm_operation_and_code() -> None:
    error = DuplicateNameError(
        realm_id="9130", operation="create_customer", code="6240", message="Dup", detail="Id=5"
    )
    assert str(error) == (
        "QuickBooks create_customer for realm 9130 failed with code 6240: Dup: Id=5"
    )


def test_backoff_is_jittered_below_an_exponential_ceiling() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    assert policy.delay(1, draw=lambda: 1.0) == 0.5
    assert policy.delay(3, draw=lambda: 1.0) == 2.0
    assert policy.delay(10, draw=lambda: 1.0) == 4.0  # capped
    assert policy.delay(3, draw=lambda: 0.25) == 0.5  # full jitter: anywhere in [0, ceiling]
    assert policy.delay(3, draw=lambda: 0.0) == 0.0


def test_retry_after_is_a_floor_with_a_sanity_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, max_retry_after=30.0)
    assert policy.delay(1, retry_after=7.0, draw=lambda: 1.0) == 7.0
    assert policy.delay(4, retry_after=1.0, draw=lambda: 1.0) == 4.0
    assert policy.delay(1, retry_after=3600.0, draw=lambda: 0.0) == 30.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 25, 16, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 25 Nov 2026 16:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 25 Nov 2026 15:00:00 GMT", now) == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
