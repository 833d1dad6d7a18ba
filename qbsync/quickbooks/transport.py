"""The client's HTTP layer: one aiohttp session per QuickBooksClient, and what its callers
share about answers and failures.

aiohttp rather than httpx: with the hundreds of requests a pusher keeps in flight across
realms, httpx/httpcore spent over a millisecond of CPU per request (URL parsing, a
connection pool scanned on every request); aiohttp's is a small fraction of that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDictProxy

# Failures where QuickBooks may or may not have acted: safe to retry only because every
# write carries a requestid (reads are safe anyway).
RETRYABLE_TRANSPORT_ERRORS = (
    asyncio.TimeoutError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)
ConnectorFactory = Callable[[], aiohttp.BaseConnector]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        """The decoded body, or None when it is not JSON (a proxy's HTML error page, say).
        orjson decodes an import's 1000-customer pages three times faster than json; what it
        refuses (a body in UTF-16, say) gets json's chance before it counts as not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            pass
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HttpClient:
    """Requests with every answer read in full. The aiohttp session is made on first use
    (inside the running event loop, as aiohttp wants) and has no connection cap: each
    realm's limiter already bounds its requests in flight, and every connection stays open
    for reuse. `connector` replaces the TCP connector (tests: a stand-in server)."""

    def __init__(
        self,
        *,
        timeout: float,
        connector: ConnectorFactory | None = None,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._connector = connector or (lambda: aiohttp.TCPConnector(limit=0))
        self._trace_configs = trace_configs
        self._session: aiohttp.ClientSession | None = None

    def _opened(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=self._connector(),
                timeout=self._timeout,
                trace_configs=self._trace_configs,
                raise_for_status=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        async with self._opened().request(
            method,
            url,
            params=params,
            json=json_body,
            data=form,
            auth=aiohttp.BasicAuth(*auth) if auth else None,
            headers=headers,
            allow_redirects=False,
        ) as response:
            body = await response.read()
            return HttpAnswer(response.status, response.headers, body)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
