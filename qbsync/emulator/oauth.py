"""Intuit's OAuth 2.0 endpoints: the token endpoint (refresh-token grant, client
credentials as HTTP Basic), revocation, and the OpenID discovery document intuitlib reads;
and, under /_emulator/oauth, the test-only settings of refresh-token rotation (see
qbsync/emulator/tokens.py) and the release of token answers held there."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from aiohttp import web

from qbsync.emulator import clock
from qbsync.emulator.gate import STORE_KEY
from qbsync.emulator.store import Store
from qbsync.emulator.tokens import InvalidGrant, RotationSettings

TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
DISCOVERY_PATH = "/.well-known/openid_configuration"
SANDBOX_DISCOVERY_PATH = "/.well-known/openid_sandbox_configuration"
ROTATION_PATH = "/_emulator/oauth"


def _error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _client_is_valid(request: web.Request, store: Store, form_id: str, form_secret: str) -> bool:
    client_id, client_secret = form_id, form_secret
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
    expected = store.config
    return hmac.compare_digest(client_id, expected.client_id) and hmac.compare_digest(
        client_secret, expected.client_secret
    )


async def token(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    form = await request.post()
    if not _client_is_valid(
        request, store, str(form.get("client_id", "")), str(form.get("client_secret", ""))
    ):
        return _error(401, "invalid_client")
    grant_type = form.get("grant_type")
    if grant_type != "refresh_token":
        return _error(400, "unsupported_grant_type" if grant_type else "invalid_request")
    refresh_token = form.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return _error(400, "invalid_request")
    try:
        grant = store.tokens.refresh(refresh_token, clock.now())
    except InvalidGrant:
        return _error(400, "invalid_grant")
    await store.tokens.hold()
    return web.json_response(grant.body(), headers={"Cache-Control": "no-store"})


async def revoke(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    if not _client_is_valid(request, store, "", ""):
        return _error(401, "invalid_client")
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return _error(400, "invalid_request")
    token_value = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token_value, str) or not token_value:
        return _error(400, "invalid_request")
    store.tokens.revoke(token_value)
    return web.json_response({})


async def discovery(request: web.Request) -> web.Response:
    origin = str(request.url.origin())
    return web.json_response(
        {
            "issuer": origin,
            "authorization_endpoint": f"{origin}/connect/oauth2",
            "token_endpoint": f"{origin}{TOKEN_PATH}",
            "userinfo_endpoint": f"{origin}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{origin}{REVOKE_PATH}",
            "jwks_uri": f"{origin}/oauth2/v1/keys",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }
    )


def _rotation_view(store: Store) -> dict[str, object]:
    return {**store.tokens.rotation.as_dict(), "held": store.tokens.held}


async def get_rotation(request: web.Request) -> web.Response:
    return web.json_response(_rotation_view(request.app[STORE_KEY]))


async def set_rotation(request: web.Request) -> web.Response:
    """Change rotation_seconds, previous_token_seconds or hold_answers while running."""
    store = request.app[STORE_KEY]
    try:
        changes = json.loads(await request.read() or b"{}")
        if not isinstance(changes, dict):
            raise ValueError("expected a JSON object")
        settings: RotationSettings = store.tokens.rotation.updated(changes)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    store.tokens.rotation = settings
    return web.json_response(_rotation_view(store))


async def release_held(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    released = store.tokens.held
    store.tokens.release_held()
    return web.json_response({"released": released})


def add_routes(app: web.Application) -> None:
    app.router.add_get(ROTATION_PATH, get_rotation)
    app.router.add_put(ROTATION_PATH, set_rotation)
    app.router.add_post(ROTATION_PATH + "/release", release_held)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(REVOKE_PATH, revoke)
    app.router.add_get(DISCOVERY_PATH, discovery)
    app.router.add_get(SANDBOX_DISCOVERY_PATH, discovery)
