"""The console's session: the JWT Liscio issued, given once as `/?token=<jwt>`, then kept
in an HttpOnly, SameSite=Strict cookie; and the CSRF token every write must carry.

The cookie holds the token itself, so any number of API instances share sessions without
storing them, and a session ends when its token expires. The CSRF token is an HMAC of the
session's token: a page of another site can neither read the cookie (HttpOnly) nor our
HTML (same-origin policy), so it cannot compute or copy it; the page's htmx sends it in
the `X-CSRF-Token` header of every request, and every write is refused without it.
SameSite=Strict keeps the cookie off requests other sites start, as a second wall.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "qbsync_session"
CSRF_HEADER = "X-CSRF-Token"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CSRF_PURPOSE = b"qbsync console csrf v1"


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_token), presented)


def same_origin(request: Request) -> bool:
    """A browser names the page that sent a write in `Origin`; it must be ours. (A request
    without the header, from a client that is no browser, is judged by its CSRF token.)"""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def keep_session(response: Response, request: Request, token: str) -> None:
    """A browser-session cookie: it goes when the browser closes, and the server stops
    honouring it when the token inside expires."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
