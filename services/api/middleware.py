"""The API's ASGI middleware, outermost first:

- `Observed`: one JSON log line per request naming its user and firm, and the Prometheus
  request counter and latency histogram by route template;
- `BodyLimit`: a body over 64 KB is answered 413 before anything reads it;
- `Idempotent`: a POST with an `Idempotency-Key` header, kept 24 h per firm in PostgreSQL
  (`tx.idempotency`): the same key with the same body answers the first response again and
  does nothing; with another body, 422. Every POST route of the API gets it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbsync.db.idempotency import StoredResponse
from qbsync.metrics import API_REQUEST_SECONDS, API_REQUESTS
from services.api.deps import ApiDeps
from services.api.problems import Problem, problem_response

log = logging.getLogger("qbsync.api.requests")

MAX_BODY_BYTES = 64 * 1024
FIRM_PATH = re.compile(r"^/v1/firms/(?P<firm_id>[^/]+)/")


async def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _send_problem(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    response = problem_response(
        problem.status, problem.title, problem.detail, headers=problem.headers
    )
    await response(scope, receive, send)


class Observed:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            API_REQUESTS.labels(method, template, str(status)).inc()
            API_REQUEST_SECONDS.labels(method, template).observe(elapsed)
            state: dict[str, Any] = scope.get("state") or {}
            log.info(
                "request",
                extra={
                    "method": method,
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "user": state.get("user"),
                    "firm_id": state.get("firm_id"),
                },
            )


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        too_large = Problem(
            413, "Content Too Large", f"the request body exceeds {self.limit} bytes"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_problem(scope, receive, send, too_large)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await _send_problem(scope, receive, send, too_large)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, await _replay(bytes(body)), send)


class Idempotent:
    """Only a request that will be served (its token is an admin's of the path's firm) is
    looked up or remembered, so a key never answers anyone else; every other request goes
    on to the routes, which refuse it as they would without the header."""

    def __init__(self, app: ASGIApp, deps: ApiDeps) -> None:
        self.app = app
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        key_header = headers.get(b"idempotency-key")
        match = FIRM_PATH.match(scope.get("path", ""))
        if scope["type"] != "http" or scope["method"] != "POST" or not key_header or not match:
            await self.app(scope, receive, send)
            return
        firm_id = match["firm_id"]
        try:
            claims = self.deps.tokens.claims(headers.get(b"authorization", b"").decode())
        except Problem:
            claims = None
        if claims is None or claims.firm_id != firm_id or claims.role != "admin":
            await self.app(scope, receive, send)
            return
        key = key_header.decode(errors="replace")
        if not 1 <= len(key) <= 255:
            await _send_problem(
                scope,
                receive,
                send,
                Problem(
                    422, "Unprocessable Content", "Idempotency-Key must be 1 to 255 characters"
                ),
            )
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        query = scope.get("query_string", b"")
        fingerprint = hashlib.sha256(
            scope["path"].encode() + b"?" + query + b"\n" + body
        ).hexdigest()
        repository = self.deps.uow.direct.idempotency
        claim = await repository.claim(firm_id, key, fingerprint)
        if claim.outcome == "mismatch":
            await _send_problem(
                scope,
                receive,
                send,
                Problem(
                    422,
                    "Unprocessable Content",
                    "this Idempotency-Key was used with another request in the last 24 hours",
                ),
            )
            return
        if claim.outcome == "in_progress":
            await _send_problem(
                scope,
                receive,
                send,
                Problem(409, "Conflict", "a request with this Idempotency-Key is under way"),
            )
            return
        if claim.outcome == "replay":
            assert claim.response is not None
            await _send_stored(send, claim.response)
            return
        await self._serve_and_keep(scope, body, send, firm_id, key)

    async def _serve_and_keep(
        self, scope: Scope, body: bytes, send: Send, firm_id: str, key: str
    ) -> None:
        """Serve the request and keep its answer under the key before the client sees it:
        a retry that arrives as soon as the answer did finds the answer, not a key in use."""
        status = 500
        content_type = "application/json"
        held: list[Message] = []

        async def holding_send(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode()
            held.append(message)

        repository = self.deps.uow.direct.idempotency
        try:
            await self.app(scope, await _replay(body), holding_send)
        except BaseException:
            await repository.release(firm_id, key)
            raise
        # A failure of ours or of QuickBooks (5xx) is not an answer to keep: a retry with
        # the same key should try again.
        if status >= 500:
            await repository.release(firm_id, key)
        else:
            answer = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
            await repository.complete(firm_id, key, StoredResponse(status, content_type, answer))
        for message in held:
            await send(message)


async def _send_stored(send: Send, response: StoredResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status,
            "headers": [
                (b"content-type", response.content_type.encode()),
                (b"content-length", str(len(response.body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": response.body})
