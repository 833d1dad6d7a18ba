"""DELETE /connection: disconnect from QuickBooks (as `qbsync disconnect`)."""

from __future__ import annotations

from fastapi import Response

from qbsync.sync import integration
from services.api.auth import AdminAccess
from services.api.deps import Deps
from services.api.problems import problem_responses
from services.api.routes import firm_router

router = firm_router("connection")


@router.delete(
    "/connection",
    status_code=204,
    response_class=Response,
    summary="Revoke the tokens and forget the connection; links and records stay",
    responses=problem_responses(409),
)
async def delete_connection(access: AdminAccess, deps: Deps) -> Response:
    await integration.disconnect(deps.uow, deps.quickbooks, access.firm_id)
    return Response(status_code=204)
