"""What every QuickBooks API request goes through before and after its operation runs:
the request log, bearer-token authentication, the realm's throttles, `requestid` replays,
latency and injected faults. The order is QuickBooks': 401/403 first, then 429."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets

import orjson
from aiohttp import web

from qbsync.emulator import api, clock, faults
from qbsync.emulator.errors import (
    QboFault,
    authentication_failed_body,
    authorization_failed,
    system_failure,
    throttled,
)
from qbsync.emulator.limits import retry_after_header
from qbsync.emulator.requestlog import LoggedRequest
from qbsync.emulator.store import RealmState, Store

log = logging.getLogger("qbsync.emulator")

STORE_KEY = web.AppKey("emulator_store", Store)


def encode(body: dict[str, object], at: float | None = None) -> bytes:
    """A JSON answer with QuickBooks' `time` field last. orjson: a page of 1000 customers
    costs it about 1 ms, json 10 (the emulator serves an import's pages beside the
    importer). What orjson refuses (an integer beyond 64 bits someone wrote) json encodes."""
    answer = {**body, "time": clock.response_time(clock.now() if at is None else at)}
    try:
        return orjson.dumps(answer)
    except orjson.JSONEncodeError:
        return json.dumps(answer).encode()


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        charset="UTF-8",
        headers={"intuit_tid": secrets.token_hex(12), **(headers or {})},
    )


async def handle_api(request: web.Request) -> web.StreamResponse:
    store = request.app[STORE_KEY]
    realm_id = request.match_info["realm"]
    segments = tuple(part for part in request.match_info["tail"].split("/") if part)
    raw_body = await request.read() if request.method == "POST" else b""
    params = {key: request.query[key] for key in request.query}
    operation = api.classify(request.method, segments, params, raw_body)
    request_id = params.get("requestid") or None
    arrived = clock.now()
    state = store.get(realm_id)
    entry = store.log.start(
        method=request.method,
        path=request.path,
        realm_id=realm_id,
        request_id=request_id,
        operation=operation.name,
        started_at=arrived,
        in_flight_at_arrival=state.limiter.in_flight if state else 0,
    )
    entry.cost = operation.cost
    if operation.write and operation.body_error is None:
        entry.write_body = operation.body
    try:
        refused = _authenticate(request, store, realm_id, state, arrived)
        if refused is not None:
            return _finish(entry, refused)
        assert state is not None
        wait = state.limiter.try_admit(arrived, operation.cost, batch=operation.name == "batch")
        if wait is not None:
            body = throttled().body(arrived)
            headers = {"Retry-After": retry_after_header(wait)}
            return _finish(entry, json_response(429, json.dumps(body).encode(), headers))
        limiter = state.limiter
        try:
            return await _admitted(request, store, state, operation, request_id, entry)
        finally:
            limiter.release()
    finally:
        entry.finished_at = clock.now()


def _finish(entry: LoggedRequest, response: web.Response) -> web.Response:
    entry.status = response.status
    return response


def _authenticate(
    request: web.Request, store: Store, realm_id: str, state: RealmState | None, now: float
) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        detail = "Authorization header missing or not of the form 'Bearer <access token>'"
        return _unauthenticated(detail)
    token = token.strip()
    token_realm = store.tokens.realm_of(token, now)
    if token_realm is None:
        if store.tokens.is_expired(token, now):
            return _unauthenticated(f"Token expired: {token[:12]}...")
        return _unauthenticated("Token invalid: the bearer token is unknown or was revoked")
    if state is not None and faults.unauthorized(state.faults, store.rng):
        return _unauthenticated("Token invalid: the company no longer authorizes this app")
    if token_realm != realm_id or state is None:
        fault = authorization_failed(
            f"The access token was issued for company {token_realm}, not {realm_id}"
        )
        return json_response(fault.status, json.dumps(fault.body(now)).encode())
    return None


def _unauthenticated(detail: str) -> web.Response:
    return json_response(
        401,
        json.dumps(authentication_failed_body(detail)).encode(),
        {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
    )


async def _admitted(
    request: web.Request,
    store: Store,
    state: RealmState,
    operation: api.Operation,
    request_id: str | None,
    entry: LoggedRequest,
) -> web.StreamResponse:
    plan = faults.plan(state.faults, store.rng, write=operation.write)
    replay_key = request_id if operation.write else None
    if replay_key is not None:
        remembered = state.realm.remembered(replay_key)
        if remembered is None and replay_key in state.writes_in_progress:
            # A retry overtook the first attempt: answer what the first one answers.
            remembered = await asyncio.shield(state.writes_in_progress[replay_key])
        if remembered is not None:
            await _sleep(plan.delay_seconds)
            entry.operation += " (replayed)"
            return _finish(entry, json_response(*remembered))
    pending: asyncio.Future[tuple[int, bytes]] | None = None
    if replay_key is not None:
        pending = asyncio.get_running_loop().create_future()
        state.writes_in_progress[replay_key] = pending
    try:
        await _sleep(plan.delay_seconds)
        status, body = _run(store, state, operation, plan)
        if replay_key is not None and status == 200:
            state.realm.remember(replay_key, status, body)
        if pending is not None:
            pending.set_result((status, body))
    finally:
        if pending is not None:
            state.writes_in_progress.pop(replay_key or "", None)
            if not pending.done():
                pending.cancel()
    await _sleep(plan.extra_delay_seconds)
    response = json_response(status, body)
    entry.status = status
    if plan.drop:
        entry.dropped = True
        _drop_connection(request)
    return response


def _run(
    store: Store, state: RealmState, operation: api.Operation, plan: faults.FaultPlan
) -> tuple[int, bytes]:
    now = clock.now()
    if plan.fail_5xx:
        return 500, json.dumps(system_failure().body(now)).encode()
    try:
        return 200, encode(api.execute(state.realm, operation, now), now)
    except QboFault as fault:
        return fault.status, json.dumps(fault.body(now)).encode()
    except Exception:  # a bug here must still answer as QuickBooks would
        log.exception("emulator operation failed", extra={"operation": operation.name})
        return 500, json.dumps(system_failure().body(now)).encode()


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def _drop_connection(request: web.Request) -> None:
    """Close the connection without an answer: the write happened, the client can't know."""
    transport = request.transport
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.abort()
