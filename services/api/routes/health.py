"""Liveness, readiness and the process's Prometheus metrics (no token needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from services.api.deps import Deps

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: PostgreSQL answers and every migration is applied",
    responses={503: {"model": Health}},
)
async def readyz(deps: Deps) -> Response:
    try:
        ready = await deps.ready()
    except Exception:
        ready = False
    return JSONResponse({"status": "ok" if ready else "unavailable"}, 200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
