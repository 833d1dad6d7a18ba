"""Every error of the API as `application/problem+json` (RFC 9457: type, title, status,
detail). Handlers raise `Problem` (or a library error mapped below); nothing reaches the
client as a bare 500 or a traceback."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from qbsync.crypto import TokenDecryptionError
from qbsync.errors import (
    BadInput,
    ConfigurationError,
    Conflict,
    DependencyUnavailable,
    NotFound,
    QbsyncError,
    ReconnectNeeded,
    RecordRefused,
    Transient,
)
from qbsync.kafka.bulk import DeliveryFailed
from qbsync.quickbooks.errors import (
    AuthenticationError,
    DuplicateNameError,
    NeedsReconnectError,
    QuickBooksError,
    QuickBooksUnavailable,
    QuickBooksValidationError,
    StaleObjectError,
)
from qbsync.quickbooks.oauth import REFRESH
from qbsync.retry import is_transient
from services.api.ids import NAMES_NOTHING

log = logging.getLogger("qbsync.api")

PROBLEM_JSON = "application/problem+json"
# What a client is told to wait before trying again when QuickBooks or PostgreSQL is away.
RETRY_AFTER_SECONDS = 5
# The `type` of the problem that only reconnecting QuickBooks solves (RFC 9457 wants an
# absolute URI; a tag URI names it without promising a page behind it). Every other
# problem is `about:blank`: its status says all.
RECONNECT_TYPE = "tag:qbsync,2026:problems/quickbooks-reconnect"


class ProblemDocument(BaseModel):
    """An error (RFC 9457)."""

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["account 'a-1' does not exist"])


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(
        body | (extra or {}), status_code=status, headers=headers, media_type=PROBLEM_JSON
    )


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def unavailable(detail: str) -> Problem:
    return Problem(
        503, "Service Unavailable", detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


# The `responses=` of a route: the problem documents it may answer, for the OpenAPI.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ProblemDocument, "content": {PROBLEM_JSON: {}}} for status in statuses
    }


def reconnect_quickbooks(detail: str) -> Problem:
    """The firm's QuickBooks connection is gone or refused: only an admin reconnecting
    QuickBooks helps, which its own `type` says so that a client can offer that."""
    return Problem(409, "Conflict", detail, extra={"type": RECONNECT_TYPE})


def _as_problem(exc: Exception) -> Problem | None:
    """The problem a library error stands for; None for a fault of ours (a bug: 500)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, NotFound):
        return not_found(str(exc))
    if isinstance(exc, ReconnectNeeded):
        return reconnect_quickbooks(str(exc))
    if isinstance(exc, NeedsReconnectError | TokenDecryptionError):
        return reconnect_quickbooks(f"the QuickBooks connection needs reconnecting: {exc}")
    if isinstance(exc, AuthenticationError):
        if exc.operation == REFRESH:  # the app's own OAuth client was refused, not the firm
            return Problem(
                503,
                "Service Unavailable",
                "QuickBooks refused this service's OAuth client; an operator must fix its"
                " QBO_CLIENT_ID and QBO_CLIENT_SECRET",
            )
        return reconnect_quickbooks(
            f"QuickBooks refused the firm's access (reconnect QuickBooks): {exc}"
        )
    if isinstance(exc, Conflict):
        return Problem(409, "Conflict", str(exc))
    if isinstance(exc, DuplicateNameError):
        return Problem(409, "Conflict", f"QuickBooks refused the name: {exc}")
    if isinstance(exc, QuickBooksValidationError):  # the values themselves (not the name)
        return Problem(422, "Unprocessable Content", f"QuickBooks refused the values: {exc}")
    if isinstance(exc, RecordRefused):  # the record is gone or inactive in QuickBooks
        return Problem(409, "Conflict", f"QuickBooks refused the record: {exc}")
    if isinstance(exc, StaleObjectError):
        return Problem(409, "Conflict", f"the record changed in QuickBooks meanwhile: {exc}")
    if isinstance(exc, QuickBooksUnavailable):
        return unavailable(f"QuickBooks is unavailable: {exc}")
    if isinstance(exc, QuickBooksError):
        return Problem(502, "Bad Gateway", f"QuickBooks answered unexpectedly: {exc}")
    if isinstance(exc, Transient | DependencyUnavailable | DeliveryFailed) or is_transient(exc):
        return unavailable("the database or the broker is unavailable; try again")
    if isinstance(exc, BadInput):
        return Problem(422, "Unprocessable Content", str(exc))
    if isinstance(exc, ConfigurationError):
        return Problem(503, "Service Unavailable", f"this service is not configured: {exc}")
    return None


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    problem = _as_problem(exc)
    if problem is None:
        log.exception("unexpected error", exc_info=exc)
        return problem_response(500, "Internal Server Error", "an unexpected error; it was logged")
    return problem_response(
        problem.status,
        problem.title,
        problem.detail,
        headers=problem.headers,
        extra=problem.extra,
    )


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON): a value of the
        # wrong format, which the contract answers 422 as its other validation errors.
        return problem_response(
            422, "Unprocessable Content", f"the request body could not be read: {exc.detail}"
        )
    titles = {404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large"}
    title = titles.get(exc.status_code, "Error")
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, title, detail, headers=headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Each error without its `input`: the input may be anything (bytes, a huge string).
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg"),
            "type": e.get("type"),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
    named_nothing = [e for e in errors if e["type"] == NAMES_NOTHING]
    if named_nothing:  # the request is about nothing, whatever else is wrong with it
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in named_nothing)
        return problem_response(404, "Not Found", detail)
    return problem_response(422, "Unprocessable Content", detail, extra={"errors": errors})


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    # Starlette answers with the handler of the exception's nearest class, and only the
    # `Exception` one runs outside the middleware (which then sees no answer): the errors
    # a request may meet are named, so that their answer passes through the middleware.
    mapped: tuple[type[Exception], ...] = (
        Problem,
        QbsyncError,
        DeliveryFailed,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        KafkaError,
        OSError,  # the network's, and TimeoutError
        Exception,
    )
    for error in mapped:
        app.add_exception_handler(error, _on_problem)
