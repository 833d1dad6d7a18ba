"""The probes' rules: /healthz answers whatever the checks say; /readyz fails a check that
raises or does not answer in time; a consumer holds its assignment between a rebalance's
end and the next revocation (issue 17)."""

from __future__ import annotations

import asyncio
import sys

import httpx

from qbsync.http import ServiceHttpServer
from qbsync.kafka.membership import GroupMembership


async def test_readiness_fails_a_hanging_or_raising_check_and_liveness_does_not_care() -> None:
    server = ServiceHttpServer("probe-test", "127.0.0.1", 0)
    checks = {"fine": True}

    async def fine() -> bool:
        return checks["fine"]

    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    async def raises() -> bool:
        raise ConnectionError("PostgreSQL is restarting")

    server.add_check("fine", fine)
    port = await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/readyz")).status_code == 200
            server.add_check("hangs", hangs)
            server.add_check("raises", raises)
            answer = await http.get("/readyz", timeout=5)
            assert answer.status_code == 503
            assert answer.json()["checks"] == {"fine": True, "hangs": False, "raises": False}
            alive = await http.get("/healthz")
            assert (alive.status_code, alive.json()["status"]) == (200, "ok")
    finally:
        await server.stop()


def test_a_consumer_holds_its_assignment_from_a_rebalance_until_a_revocation() -> None:
    membership = GroupMembership()
    assert not membership.holds_assignment()  # no consumer yet: not ready for work
    membership.joining("qbsync-matcher")
    assert not membership.holds_assignment()
    membership.assigned("qbsync-matcher")  # even with no partition: more instances than them
    assert membership.holds_assignment()
    membership.joining("qbsync-importer")
    assert not membership.holds_assignment()  # every consumer of the process must hold one
    membership.assigned("qbsync-importer")
    membership.revoked("qbsync-matcher")
    assert not membership.holds_assignment()
    membership.assigned("qbsync-matcher")
    assert membership.holds_assignment()
    membership.left("qbsync-matcher")
    membership.left("qbsync-importer")
    assert not membership.holds_assignment()  # stopping


async def test_the_container_healthcheck_asks_the_process_s_own_healthz() -> None:
    server = ServiceHttpServer("probe-test", "127.0.0.1", 0)
    port = await server.start()

    async def healthcheck(on_port: int) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "qbsync.healthcheck",
            env={"PATH": "/usr/bin:/bin", "QBSYNC_HTTP_PORT": str(on_port)},
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        return process.returncode or 0, err.decode()

    try:
        assert await healthcheck(port) == (0, "")
    finally:
        await server.stop()
    code, said = await healthcheck(port)  # nothing answers there any more
    assert code == 1
    assert said.count("\n") == 1 and said.startswith(f"healthcheck: http://127.0.0.1:{port}/")
