"""A scriptable QuickBooks stand-in for the client's unit tests: an aiohttp server on a
Unix socket of its own, reached through `connector()` whatever host a URL names.

It plays the OAuth token endpoint itself (rotating refresh tokens, invalid_grant for old
ones) and hands every authenticated API request to the test's `api` handler; an unknown
or expired access token gets QuickBooks' 401 Fault. A handler answers with an `Answer`,
or raises (`Dropped`, say) to have the connection closed without one.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

TOKEN_URL = "http://oauth.test/oauth2/v1/tokens/bearer"
BASE_URL = "http://qbo.test"
REALM = "9130"


@dataclass(frozen=True)
class Answer:
    """What the stand-in answers: a status, a JSON body or a text one (or none), headers."""

    status: int
    json: Any = None
    text: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


class Dropped(Exception):
    """Raised by a handler: the connection is closed without an answer."""


@dataclass(frozen=True)
class SeenUrl:
    path: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class SeenRequest:
    method: str
    url: SeenUrl
    headers: Mapping[str, str]
    content: bytes


ApiHandler = Callable[[SeenRequest], Awaitable[Answer]]


def fault(code: str, message: str = "", detail: str = "", status: int = 400) -> Answer:
    body = {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": "ValidationFault",
        },
        "time": "2026-11-25T08:00:00.000-08:00",
    }
    return Answer(status, json=body)


def customer(customer_id: str, sync_token: str = "0", **fields: Any) -> dict[str, Any]:
    return {"Id": customer_id, "SyncToken": sync_token, "DisplayName": f"C{customer_id}", **fields}


def query_of(request: SeenRequest) -> str:
    return request.url.params["query"]


def body_of(request: SeenRequest) -> Any:
    return json.loads(request.content)


class FakeQuickBooks:
    def __init__(
        self, refresh_token: str = "rt-0", expires_in: int = 3600, token_delay: float = 0.0
    ) -> None:
        self.token_delay = token_delay  # lets concurrent refreshes overlap
        self.refresh_tokens = {refresh_token}
        self.access_tokens: set[str] = set()
        self.expires_in = expires_in
        self.token_requests = 0
        self.token_answers: list[Answer] = []  # scripted token endpoint answers first
        self.revoked: list[str] = []
        self.api_requests: list[SeenRequest] = []
        self.api: ApiHandler = self._no_api
        self._socket_path = ""
        self._runner: web.AppRunner | None = None

    @staticmethod
    async def _no_api(request: SeenRequest) -> Answer:
        raise AssertionError(f"unexpected API request {request.method} {request.url}")

    def connector(self) -> aiohttp.BaseConnector:
        """A connector to this stand-in (its server starts with the first one made)."""
        if not self._socket_path:
            self._socket_path = os.path.join(tempfile.mkdtemp(prefix="fake-qbo-"), "socket")
            listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listening.bind(self._socket_path)
            listening.listen(128)  # requests made before serving starts wait in the backlog
            self._serving = asyncio.get_running_loop().create_task(self._serve(listening))
        return aiohttp.UnixConnector(path=self._socket_path)

    async def _serve(self, listening: socket.socket) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._http_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, listening).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _http_handler(self, request: web.Request) -> web.StreamResponse:
        seen = SeenRequest(
            method=request.method,
            url=SeenUrl(request.path, dict(request.query)),
            headers=dict(request.headers),
            content=await request.read(),
        )
        try:
            answer = await self._handle(seen)
        except Exception:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)  # never sent: the connection is gone
        if answer.json is None:
            return web.Response(status=answer.status, text=answer.text, headers=answer.headers)
        return web.json_response(answer.json, status=answer.status, headers=answer.headers)

    def script(self, *answers: Answer | Exception) -> None:
        """Answer the next API requests in order (an exception drops the connection)."""
        queue = list(answers)

        async def scripted(request: SeenRequest) -> Answer:
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.api = scripted

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    async def _handle(self, request: SeenRequest) -> Answer:
        if request.url.path == "/oauth2/v1/tokens/bearer":
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            return self._token(request)
        if request.url.path == "/oauth2/v1/tokens/revoke":
            self.revoked.append(body_of(request)["token"])
            return Answer(200)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return Answer(
                401,
                json={
                    "fault": {
                        "error": [
                            {
                                "message": "message=AuthenticationFailed; errorCode=003200; "
                                "statusCode=401",
                                "detail": "Token expired",
                                "code": "3200",
                            }
                        ],
                        "type": "SERVICE",
                    }
                },
            )
        self.api_requests.append(request)
        return await self.api(request)

    def _token(self, request: SeenRequest) -> Answer:
        self.token_requests += 1
        if self.token_answers:
            return self.token_answers.pop(0)
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return Answer(400, json={"error": "unsupported_grant_type"})
        if form.get("refresh_token") not in self.refresh_tokens:
            return Answer(400, json={"error": "invalid_grant"})
        self.refresh_tokens.discard(form["refresh_token"])
        new_refresh = f"rt-{self.token_requests}"
        access = f"at-{self.token_requests}"
        self.refresh_tokens.add(new_refresh)
        self.access_tokens.add(access)
        return Answer(
            200,
            json={
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": self.expires_in,
                "x_refresh_token_expires_in": 8726400,
                "token_type": "bearer",
            },
        )
