"""One APIRouter per module; `services/api/app.py` registers them all (ROUTERS there).

A firm's routes come from `firm_router()`: below `/v1/firms/{firm_id}`, behind the one
authorization dependency (services/api/auth.py), so no handler can forget it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from services.api.auth import firm_access
from services.api.problems import problem_responses


def firm_router(tag: str) -> APIRouter:
    return APIRouter(
        prefix="/v1/firms/{firm_id}",
        tags=[tag],
        dependencies=[Depends(firm_access)],
        responses=problem_responses(401, 403, 404, 422),
    )
