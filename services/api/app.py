"""The integration API as a FastAPI application: `create_app(deps)`.

The contract is the "HTTP API: the integration page" section of CONTRACTS.md. Every
`/v1/firms/{firm_id}` route module adds its router to ROUTERS; the middleware
(services/api/middleware.py) gives every request its log line and metrics, every body its
64 KB limit and every POST its Idempotency-Key; every error is problem+json
(services/api/problems.py).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.api.deps import ApiDeps
from services.api.middleware import BodyLimit, Idempotent, Observed
from services.api.problems import install_problem_handlers
from services.api.routes import (
    audit,
    connection,
    health,
    integration,
    invoices,
    links,
    records,
    suggestions,
    syncs,
)

DESCRIPTION = """\
Everything a firm does on its QuickBooks integration page: the records of both sides and
their links, Sync Now, suggestions, manual links, creates on either side, invoices, the
audit trail and disconnecting.

Every `/v1` request carries `Authorization: Bearer <JWT>` (claims `sub`, `firm_id`,
`role`: `admin` | `staff`, `exp`). Staff may read; every write needs `admin`. Errors are
`application/problem+json` (RFC 9457). A POST may carry an `Idempotency-Key`.
"""

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    integration.router,
    records.router,
    suggestions.router,
    syncs.router,
    audit.router,
    connection.router,
    links.router,
    invoices.router,
    # The console at `/` (helper `page`) adds its router here.
)


def create_app(deps: ApiDeps) -> FastAPI:
    app = FastAPI(title="qbsync integration API", version="1", description=DESCRIPTION)
    app.state.deps = deps
    install_problem_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # The last added is the outermost: Observed sees every answer, even a 413.
    app.add_middleware(Idempotent, deps=deps)
    app.add_middleware(BodyLimit)
    app.add_middleware(Observed)
    return app
