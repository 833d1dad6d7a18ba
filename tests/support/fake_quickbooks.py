"""A scriptable QuickBooks stand-in on httpx.MockTransport, for the client's unit tests.

It plays the OAuth token endpoint itself (rotating refresh tokens, invalid_grant for old
ones) and hands every authenticated API request to the test's `api` handler; an unknown
or expired access token gets QuickBooks' 401 Fault.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import httpx

TOKEN_URL = "https://oauth.test/oauth2/v1/tokens/bearer"
BASE_URL = "https://qbo.test"
REALM = "9130"

ApiHandler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def fault(code: str, message: str = "", detail: str = "", status: int = 400) -> httpx.Response:
    body = {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": "ValidationFault",
        },
        "time": "2026-11-25T08:00:00.000-08:00",
    }
    return httpx.Response(status, json=body)


def customer(customer_id: str, sync_token: str = "0", **fields: Any) -> dict[str, Any]:
    return {"Id": customer_id, "SyncToken": sync_token, "DisplayName": f"C{customer_id}", **fields}


def query_of(request: httpx.Request) -> str:
    return request.url.params["query"]


def body_of(request: httpx.Request) -> Any:
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
        self.token_answers: list[httpx.Response] = []  # scripted token endpoint answers first
        self.revoked: list[str] = []
        self.api_requests: list[httpx.Request] = []
        self.api: ApiHandler = self._no_api

    @staticmethod
    async def _no_api(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected API request {request.method} {request.url}")

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def script(self, *answers: httpx.Response | Exception) -> None:
        """Answer the next API requests in order (an exception is raised as the transport's)."""
        queue = list(answers)

        async def scripted(request: httpx.Request) -> httpx.Response:
            answer = queue.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.api = scripted

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/v1/tokens/bearer":
            if self.token_delay:
                await asyncio.sleep(self.token_delay)
            return self._token(request)
        if request.url.path == "/oauth2/v1/tokens/revoke":
            self.revoked.append(body_of(request)["token"])
            return httpx.Response(200)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return httpx.Response(
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

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        if self.token_answers:
            return self.token_answers.pop(0)
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "refresh_token":
            return httpx.Response(400, json={"error": "unsupported_grant_type"})
        if form.get("refresh_token") not in self.refresh_tokens:
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.refresh_tokens.discard(form["refresh_token"])
        new_refresh = f"rt-{self.token_requests}"
        access = f"at-{self.token_requests}"
        self.refresh_tokens.add(new_refresh)
        self.access_tokens.add(access)
        return httpx.Response(
            200,
            json={
                "access_token": access,
                "refresh_token": new_refresh,
                "expires_in": self.expires_in,
                "x_refresh_token_expires_in": 8726400,
                "token_type": "bearer",
            },
        )
