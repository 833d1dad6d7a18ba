"""What the API's handlers are given: the process's dependencies, built once by the
composition root (`services/api/__main__.py`) or by a test, and kept on the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from qbsync.config import Settings
from qbsync.kafka.producer import Producer
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.sync.unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from services.api.auth import TokenVerifier


@dataclass
class ApiDeps:
    settings: Settings
    uow: UnitOfWork
    quickbooks: QuickBooksClient
    producer: Producer
    tokens: TokenVerifier
    # Readiness: PostgreSQL answers and every migration is applied.
    ready: Callable[[], Awaitable[bool]]


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


Deps = Annotated[ApiDeps, Depends(get_deps)]
