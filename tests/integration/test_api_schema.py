"""schemathesis over the API's own OpenAPI, against the running app with the whole system
behind it: generated requests (valid and invalid) to every operation of a real firm; no
answer may be a 500, and every answer must match its documented status, content type,
headers and schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.support.api import seed_firm, token

pytestmark = pytest.mark.integration

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


async def test_every_answer_matches_the_openapi_and_none_is_a_server_error(
    pool: Pool, api_system: ApiSystem, tmp_path: Path
) -> None:
    firm = await seed_firm(
        pool,
        api_system.system.env["QBSYNC_SECRET_KEY"],
        accounts=[LiscioAccount("a-1", "Acme Ltd"), LiscioAccount("a-2", "Bolt Inc")],
        customers=[
            {"customer_id": "1", "display_name": "Acme Ltd"},
            {"customer_id": "2", "display_name": "Bolt Incorporated"},
        ],
        links=[("a-1", "1")],
    )
    # The firm's real ids, so that requests reach past authorization and lookups.
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        f'"path.firm_id" = "{firm.firm_id}"\n'
        '"path.account_id" = "a-2"\n'
        '"path.customer_id" = "2"\n'
    )
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{api_system.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token(firm.firm_id)}",
        "--checks",
        CHECKS,
        "--max-examples",
        "25",
        "--seed",
        "20261206",
        "--generation-deterministic",
        "--no-color",
        "--workers",
        "1",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert " passed" in report and "failed" not in report.split("SUMMARY")[-1], report[-3000:]
