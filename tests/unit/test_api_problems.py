"""Every error qbsync raises on purpose, and every outage of PostgreSQL or the broker, has
its problem answer: none is a 500 (which the API keeps for its own bugs). The classes are
enumerated, so an error class added later is checked too."""

from __future__ import annotations

import importlib
import pkgutil

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

import qbsync
from qbsync.errors import ConfigurationError, NotFound, QbsyncError
from qbsync.kafka.bulk import DeliveryFailed
from qbsync.quickbooks.errors import AuthenticationError, QuickBooksError
from qbsync.quickbooks.oauth import REFRESH
from services.api.problems import RECONNECT_TYPE, _as_problem


def _subclasses(cls: type[Exception]) -> list[type[Exception]]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


# Every module imported, so that every error class is seen whatever ran before.
for module in pkgutil.walk_packages(qbsync.__path__, "qbsync."):
    if not module.name.endswith("__main__"):  # a program, not a module
        importlib.import_module(module.name)

# Raised by the operators' commands only (`qbsync dlq`, `qbsync rewind`), by the importer's
# webhook endpoint (WebhookPayloadError), and the base, which nothing raises itself: no
# route of the API can meet them.
NOT_OF_THE_API = {"QbsyncError", "DeadLetterError", "RewindError", "WebhookPayloadError"}


def _instance(cls: type[Exception]) -> Exception:
    if issubclass(cls, QuickBooksError):
        return cls(realm_id="r-1", operation="query", code="1", message="refused")
    if issubclass(cls, ConfigurationError):
        return cls("QBO_CLIENT_ID", "missing")
    if issubclass(cls, NotFound):
        return cls("account", "a-1")
    return cls("what went wrong")


@pytest.mark.parametrize(
    "cls",
    [c for c in _subclasses(QbsyncError) if c.__name__ not in NOT_OF_THE_API],
    ids=lambda c: c.__name__,
)
def test_every_qbsync_error_has_a_problem_other_than_500(cls: type[Exception]) -> None:
    problem = _as_problem(_instance(cls))

    assert problem is not None and problem.status != 500


@pytest.mark.parametrize(
    "outage",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.InterfaceError("pool is closing"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        KafkaConnectionError(),
        DeliveryFailed("not acknowledged"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_outage_is_503_with_retry_after(outage: Exception) -> None:
    problem = _as_problem(outage)

    assert problem is not None and problem.status == 503
    assert "Retry-After" in problem.headers


def test_quickbooks_refusing_the_firm_tells_it_to_reconnect() -> None:
    refused = AuthenticationError(realm_id="r-1", operation="query", code="3200", status=401)
    problem = _as_problem(refused)

    assert problem is not None and problem.status == 409
    assert problem.extra["type"] == RECONNECT_TYPE


def test_quickbooks_refusing_our_oauth_client_is_not_the_firm_s_to_fix() -> None:
    refused = AuthenticationError(realm_id="r-1", operation=REFRESH, code="invalid_client")
    problem = _as_problem(refused)

    assert problem is not None and problem.status == 503
    assert "type" not in problem.extra
