"""The small HTTP server every service runs: /health, /metrics, and service routes.

Port QBSYNC_HTTP_PORT; 0 (the default) takes a free port, so several instances of one
service on one host never collide. The chosen port is logged at start.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger("qbsync.http")

HealthCheck = Callable[[], Awaitable[bool]]
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
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/metrics", self._metrics)
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: HealthCheck) -> None:
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

    async def _health(self, _: web.Request) -> web.Response:
        results: dict[str, bool] = {}
        for name, check in self.checks.items():
            try:
                results[name] = await check()
            except Exception:
                results[name] = False
        healthy = all(results.values())
        return web.json_response(
            {
                "service": self.service,
                "status": "ok" if healthy else "unhealthy",
                "checks": results,
            },
            status=200 if healthy else 503,
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=await self.render_metrics(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
