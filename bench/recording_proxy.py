"""A pass-through HTTP proxy between a service and the QuickBooks emulator that notes what
each customer write carried: its requestid, realm, customer Id and phone number.

The emulator's request log says when a write arrived and finished and what it answered,
but not what it wrote; with these notes a benchmark can tie each logged write to the event
whose value it carried. Every timing figure still comes from the emulator's log: the proxy
only adds its own hop (well under a millisecond on localhost) before the emulator's clock
starts.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

# POST /v3/company/{realm}/customer: a customer create or (with Id) an update.
_CUSTOMER_WRITE = re.compile(r"^/v3/company/(?P<realm>[^/]+)/customer/?$")
# Hop-by-hop headers and those aiohttp sets itself: never copied across.
_NOT_FORWARDED = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "content-encoding",
    "date",
    "server",
}


@dataclass(frozen=True)
class RecordedWrite:
    """What one customer write request carried (retries with one requestid repeat it)."""

    request_id: str | None
    realm_id: str
    customer_id: str | None  # None for a create
    phone: str | None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def recorded_write(path: str, request_id: str | None, body: bytes) -> RecordedWrite | None:
    """The note for one request, or None when it is not a customer write (pure)."""
    matched = _CUSTOMER_WRITE.match(path)
    if matched is None:
        return None
    try:
        customer: Any = json.loads(body or b"{}")
    except ValueError:
        customer = {}
    if not isinstance(customer, dict):
        customer = {}
    phone = (customer.get("PrimaryPhone") or {}).get("FreeFormNumber")
    customer_id = customer.get("Id")
    return RecordedWrite(
        request_id=request_id,
        realm_id=matched["realm"],
        customer_id=str(customer_id) if customer_id is not None else None,
        phone=phone if isinstance(phone, str) else None,
    )


class RecordingProxy:
    def __init__(self) -> None:
        self.writes: list[RecordedWrite] = []
        self._upstream = ""
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self, upstream: str) -> str:
        """Listen on a free port, forwarding to `upstream`; returns the proxy's base URL."""
        self._upstream = upstream.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=120),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        if request.method == "POST":
            note = recorded_write(request.path, request.query.get("requestid"), body)
            if note is not None:
                self.writes.append(note)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        async with self._session.request(
            request.method,
            self._upstream + request.path_qs,
            data=body or None,
            headers=headers,
            allow_redirects=False,
        ) as answer:
            payload = await answer.read()
            copied = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
            return web.Response(status=answer.status, body=payload, headers=copied)
