"""Liveness and readiness (issue 17): every service answers /healthz while its event loop
runs, and /readyz only while its consumers hold their group assignment and PostgreSQL
answers. A PostgreSQL outage makes the services unready, never dead, and they are ready
again once it is back."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from qbsync.db.pool import Pool
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess
from tests.support.stack import REPO, LocalStack

SERVICES = ("services.importer", "services.matcher", "services.pusher")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def probe(http: httpx.AsyncClient, port: int, path: str) -> tuple[int, Any]:
    try:
        answer = await http.get(f"http://127.0.0.1:{port}{path}", timeout=2.0)
    except httpx.TransportError:
        return 0, None
    return answer.status_code, answer.json()


def services_sh(verb: str) -> None:
    subprocess.run([str(REPO / "deploy" / "local" / "services.sh"), verb], check=True)


async def test_a_postgresql_outage_makes_services_unready_but_never_dead(
    spawn: Callable[..., ServiceProcess], pool: Pool, stack: Any
) -> None:
    if not isinstance(stack, LocalStack):
        pytest.skip("stops the PostgreSQL of `make services-up`; containers have their own test")
    ports = {module: free_port() for module in SERVICES}
    for module, port in ports.items():
        spawn(module, QBSYNC_HTTP_PORT=str(port), QBO_CLIENT_ID="c", QBO_CLIENT_SECRET="s")

    async with httpx.AsyncClient() as http:

        async def every(path: str, status: int) -> dict[str, Any] | None:
            answers = await asyncio.gather(*(probe(http, p, path) for p in ports.values()))
            if all(code == status for code, _ in answers):
                return dict(zip(ports, (body for _, body in answers), strict=True))
            return None

        ready = await eventually(lambda: every("/readyz", 200), timeout=180, what="all ready")
        assert all(body["checks"] == {"postgres": True, "kafka": True} for body in ready.values())
        assert await every("/health", 200)  # the first version's path: the same answer

        services_sh("pg-crash")
        try:
            unready = await eventually(
                lambda: every("/readyz", 503), timeout=60, what="all unready"
            )
            assert all(body["checks"]["postgres"] is False for body in unready.values())
            assert await every("/healthz", 200)  # alive: they wait the outage out
        finally:
            services_sh("up")
        await pool.expire_connections()  # this session's pool: its connections died too

        ready = await eventually(lambda: every("/readyz", 200), timeout=120, what="ready again")
        assert await every("/healthz", 200)
