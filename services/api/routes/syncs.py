"""Sync Now (POST /syncs), its dry run (?dry_run=true) and a run's progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response
from fastapi.responses import JSONResponse

from qbsync.sync import integration
from services.api.auth import Access, AdminAccess
from services.api.deps import Deps
from services.api.ids import RunId
from services.api.problems import problem_responses
from services.api.routes import firm_router
from services.api.schemas import AmbiguousName, DryRun, LinkProposal, PlannedWrite, Run

router = firm_router("syncs")


@router.post(
    "/syncs",
    status_code=202,
    response_model=Run,
    summary="Sync Now (joins the firm's open run); with dry_run=true, what it would do",
    responses={
        200: {"model": DryRun, "description": "dry_run=true: what a Sync Now would do now"},
        **problem_responses(409),
    },
)
async def post_sync(
    access: AdminAccess,
    deps: Deps,
    dry_run: Annotated[bool, Query(description="compute, write nothing")] = False,
) -> Response:
    if dry_run:
        found = await integration.dry_run(deps.uow, access.firm_id)
        document = DryRun(
            links=[LinkProposal(account_id=a, customer_id=c) for a, c in found.links],
            writes=[
                PlannedWrite(
                    account_id=w.account_id,
                    side=w.side,
                    field=w.field,
                    old=w.old,
                    new=w.new,
                )
                for w in found.writes
            ],
            ambiguous=[
                AmbiguousName(
                    name=a.folded_name,
                    account_ids=list(a.account_ids),
                    customer_ids=list(a.customer_ids),
                )
                for a in found.ambiguous
            ],
        )
        return JSONResponse(document.model_dump(mode="json"), status_code=200)
    report = await integration.request_sync(deps.uow, access.firm_id)
    return JSONResponse(Run.model_validate(report).model_dump(mode="json"), status_code=202)


@router.get("/syncs/{run_id}", response_model=Run, summary="A run of the firm")
async def get_run(access: Access, deps: Deps, run_id: RunId) -> Run:
    return Run.model_validate(await integration.run_of_firm(deps.uow, access.firm_id, run_id))
