"""Bodies the API cannot read: problem+json 422 (never a 400 or a 500), no row changed."""

from __future__ import annotations

import pytest

from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.support.api import bearer, is_problem, seed_firm

pytestmark = pytest.mark.integration


async def test_malformed_and_undecodable_json_bodies_are_422(
    pool: Pool, api_system: ApiSystem
) -> None:
    firm = await seed_firm(
        pool,
        api_system.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", "Acme")],
        customers=[{"customer_id": "1", "display_name": "Acme"}],
    )
    links_before = await pool.fetchval("SELECT count(*) FROM links")
    headers = bearer(firm.firm_id) | {"Content-Type": "application/json"}
    for body in (b'{"account_id": "a-1",', b";\xef\xbf\xea\x80\xbc", b"\xff\xfe", b"[1, 2"):
        response = await api_system.client.post(
            f"/v1/firms/{firm.firm_id}/links", content=body, headers=headers
        )
        assert is_problem(response, 422), (body, response.status_code, response.text)
    assert await pool.fetchval("SELECT count(*) FROM links") == links_before
