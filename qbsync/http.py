"""The small HTTP server every service runs: probes, /metrics, and service routes.

- `/healthz`, liveness: answers 200 whenever the event loop runs (answering is the proof),
  whatever the dependencies; an orchestrator restarts a process that stops answering.
- `/readyz`, readiness: 200 when every readiness check passes (the service's PostgreSQL
  answers, its Kafka consumers hold their group assignment), 503 with the failing checks
  otherwise. A PostgreSQL outage makes a service unready, never dead: the services wait
  outages out. `/health` is the same as `/readyz` (what the first version served).

Port QBSYNC_HTTP_PORT; 0 (the default) takes a free port, so several instances of one
service on one host never collide. The chosen port is logged at start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("qbsync.http")

HealthCheck = Callable[[], Awaitable[bool]]
# A check that does not answer in time fails: a probe must answer before the prober's own
# timeout (Kubernetes' default is 1 s), and a PostgreSQL that hangs is not ready either.
CHECK_TIMEOUT_SECONDS = 0.8
MetricsBody = Callable[[], Awaitable[bytes]]


async def _process_metrics() -> bytes:
    return generate_latest()


class ServiceHttpServer:
    def __init__(
        self, service: str, host: str, port: int, metrics: MetricsBody = _process_metrics
    ) -> None:
        """`metrics` renders /metrics: by default every metric of this process."""
        self.service = service
        self.host = host
        self.port = port
        self.render_metrics = metrics
        self.app = web.Application()
        self.checks: dict[str, HealthCheck] = {}
        self.app.router.add_get("/healthz", self._alive)
        self.app.router.add_get("/readyz", self._ready)
        self.app.router.add_get("/health", self._ready)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: HealthCheck) -> None:
        """A readiness check (`/readyz`): True when the service can do its work."""
        self.checks[name] = check

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        log.info("http server listening", extra={"url": f"http://{self.host}:{self.port}"})
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _alive(self, _: web.Request) -> web.Response:
        return web.json_response({"service": self.service, "status": "ok"})

    async def _ready(self, _: web.Request) -> web.Response:
        names = list(self.checks)
        passed = await asyncio.gather(*(self._passes(self.checks[name]) for name in names))
        results = dict(zip(names, passed, strict=True))
        ready = all(passed)
        return web.json_response(
            {
                "service": self.service,
                "status": "ok" if ready else "unready",
                "checks": results,
            },
            status=200 if ready else 503,
        )

    @staticmethod
    async def _passes(check: HealthCheck) -> bool:
        try:
            return await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
        except Exception:
            return False

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=await self.render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
