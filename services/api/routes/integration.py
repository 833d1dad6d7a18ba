"""GET /integration: the page's header (connection, last run, counts)."""

from __future__ import annotations

from qbsync.sync import integration
from services.api.auth import Access
from services.api.deps import Deps
from services.api.routes import firm_router
from services.api.schemas import Connection, Counts, Integration, Run

router = firm_router("integration")


@router.get(
    "/integration",
    response_model=Integration,
    summary="The firm's connection, last run and counts",
    description="Every count is the number of items GET /records lists under the filter of"
    " the same name.",
)
async def get_integration(access: Access, deps: Deps) -> Integration:
    found = await integration.overview(deps.uow, access.firm_id)
    connection = found.connection
    return Integration(
        connection=Connection(realm_id=connection.realm_id, status=connection.status)
        if connection
        else None,
        last_run=Run.model_validate(found.last_run) if found.last_run else None,
        counts=Counts(**found.counts),
    )
