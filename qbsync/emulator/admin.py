"""Test-only endpoints under /_emulator/, apart from everything QuickBooks itself serves:
create and reset realms, seed customers in bulk, act as a QuickBooks user, read the
request log and the throttles' counters, issue tokens, and change latency, faults, limits
and the webhook target while running. No authentication: the emulator binds to 127.0.0.1."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from qbsync.emulator import clock, customers, invoices
from qbsync.emulator.errors import QboFault
from qbsync.emulator.gate import STORE_KEY
from qbsync.emulator.seed import bulk_customers
from qbsync.emulator.store import SANDBOX, RealmState, Store

PREFIX = "/_emulator"
MAX_BULK = 1_000_000


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@web.middleware
async def admin_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Admin mistakes answer 400/404 with {"error": ...}; QuickBooks rules keep their Fault."""
    if not request.path.startswith(PREFIX):
        response: web.StreamResponse = await handler(request)
        return response
    try:
        response = await handler(request)
        return response
    except AdminError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except QboFault as fault:
        return web.json_response(fault.body(), status=fault.status)


def _store(request: web.Request) -> Store:
    return request.app[STORE_KEY]


def _state(request: web.Request) -> RealmState:
    realm_id = request.match_info["realm"]
    state = _store(request).get(realm_id)
    if state is None:
        raise AdminError(404, f"no realm {realm_id}")
    return state


async def _json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise AdminError(400, f"malformed JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AdminError(400, "expected a JSON object")
    return body


def _realm_summary(state: RealmState) -> dict[str, Any]:
    realm = state.realm
    rows = realm.customers.rows.values()
    return {
        "realm_id": realm.realm_id,
        "customers": len(realm.customers.rows),
        "active_customers": sum(1 for row in rows if row["Active"]),
        "deleted_customers": len(realm.customers.deleted),
        "items": len(realm.items.rows),
        "invoices": len(realm.invoices.rows),
    }


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "realms": sorted(_store(request).realms)})


async def create_realm(request: web.Request) -> web.Response:
    body = await _json(request)
    store = _store(request)
    try:
        state = store.create_realm(body.get("realm_id"), body.get("contents", SANDBOX))
    except ValueError as exc:
        raise AdminError(400, str(exc)) from None
    refresh_token = store.tokens.issue_refresh_token(state.realm.realm_id, clock.now())
    return web.json_response({**_realm_summary(state), "refresh_token": refresh_token}, status=201)


async def reset_realm(request: web.Request) -> web.Response:
    body = await _json(request)
    try:
        state = _store(request).create_realm(
            request.match_info["realm"], body.get("contents", SANDBOX)
        )
    except ValueError as exc:
        raise AdminError(400, str(exc)) from None
    return web.json_response(_realm_summary(state))


async def realm_summary(request: web.Request) -> web.Response:
    return web.json_response(_realm_summary(_state(request)))


async def issue_refresh_token(request: web.Request) -> web.Response:
    state = _state(request)
    token = _store(request).tokens.issue_refresh_token(state.realm.realm_id, clock.now())
    return web.json_response({"realm_id": state.realm.realm_id, "refresh_token": token})


async def expire_access_tokens(request: web.Request) -> web.Response:
    state = _state(request)
    expired = _store(request).tokens.expire_access_tokens(state.realm.realm_id)
    return web.json_response({"expired": expired})


async def bulk(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= MAX_BULK:
        raise AdminError(400, f"count must be an integer from 1 to {MAX_BULK}")
    prefix = body.get("prefix", "Bulk Customer")
    inactive_every = body.get("inactive_every", 0)
    if not isinstance(prefix, str) or not prefix.strip() or ":" in prefix:
        raise AdminError(400, "prefix must be a non-empty name without ':'")
    if not isinstance(inactive_every, int) or inactive_every < 0:
        raise AdminError(400, "inactive_every must be a non-negative integer")
    started = time.perf_counter()
    first, last = bulk_customers(
        state.realm, count, clock.now(), prefix=prefix, inactive_every=inactive_every
    )
    return web.json_response(
        {
            "created": count,
            "first_id": first,
            "last_id": last,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


async def list_customers(request: web.Request) -> web.Response:
    state = _state(request)
    include_inactive = request.query.get("include_inactive", "true").lower() != "false"
    rows = [row for row in state.realm.customers.rows.values() if include_inactive or row["Active"]]
    return web.json_response({"customers": rows})


async def get_customer(request: web.Request) -> web.Response:
    table = _state(request).realm.customers
    customer_id = request.match_info["id"]
    row = table.rows.get(customer_id) or table.deleted.get(customer_id)
    if row is None:
        raise AdminError(404, f"no customer {customer_id}")
    return web.json_response(row)


async def user_create_customer(request: web.Request) -> web.Response:
    row = customers.create(_state(request).realm, await _json(request), clock.now())
    return web.json_response(row, status=201)


async def user_edit_customer(request: web.Request) -> web.Response:
    state = _state(request)
    row = customers.user_edit(
        state.realm, request.match_info["id"], await _json(request), clock.now()
    )
    return web.json_response(row)


async def merge_customer(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    into = body.get("into")
    if not isinstance(into, str) or not into:
        raise AdminError(400, 'body must name the surviving customer: {"into": "<Id>"}')
    survivor = customers.merge(state.realm, request.match_info["id"], into, clock.now())
    return web.json_response(survivor)


async def list_invoices(request: web.Request) -> web.Response:
    return web.json_response({"invoices": list(_state(request).realm.invoices.rows.values())})


async def user_create_invoice(request: web.Request) -> web.Response:
    """An invoice a QuickBooks user makes (webhooks and CDC see it like any other)."""
    row = invoices.create(_state(request).realm, await _json(request), clock.now())
    return web.json_response(row, status=201)


async def user_receive_payment(request: web.Request) -> web.Response:
    body = await _json(request)
    amount = body.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise AdminError(400, 'body must give the amount paid: {"amount": <number>}')
    row = invoices.receive_payment(
        _state(request).realm, request.match_info["id"], float(amount), clock.now()
    )
    return web.json_response(row)


async def get_limits(request: web.Request) -> web.Response:
    return web.json_response(_state(request).limiter.snapshot(clock.now()))


async def set_limits(request: web.Request) -> web.Response:
    state = _state(request)
    body = await _json(request)
    settings = state.limiter.settings
    try:
        updated = replace(settings, **body)
    except TypeError as exc:
        raise AdminError(400, f"unknown limit setting: {exc}") from None
    for name, value in updated.as_dict().items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AdminError(400, f"{name} must be a positive number")
    state.limiter.settings = updated
    return web.json_response(state.limiter.snapshot(clock.now()))


async def reset_limit_counters(request: web.Request) -> web.Response:
    state = _state(request)
    state.limiter.reset_counters()
    return web.json_response(state.limiter.snapshot(clock.now()))


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_state(request).faults.as_dict())


async def set_faults(request: web.Request) -> web.Response:
    state = _state(request)
    try:
        state.faults = state.faults.updated(await _json(request))
    except ValueError as exc:
        raise AdminError(400, str(exc)) from None
    return web.json_response(state.faults.as_dict())


async def get_requests(request: web.Request) -> web.Response:
    realm_id = request.query.get("realm")
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise AdminError(400, "since must be an integer (a sequence number)") from None
    entries = _store(request).log.entries(realm_id, since)
    return web.json_response({"requests": [entry.as_dict() for entry in entries]})


async def clear_requests(request: web.Request) -> web.Response:
    _store(request).log.clear(request.query.get("realm"))
    return web.json_response({"cleared": True})


async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response(_store(request).webhooks.settings.public())


async def set_webhook(request: web.Request) -> web.Response:
    notifier = _store(request).webhooks
    try:
        notifier.settings = replace(notifier.settings, **await _json(request))
    except TypeError as exc:
        raise AdminError(400, f"unknown webhook setting: {exc}") from None
    return web.json_response(notifier.settings.public())


async def webhook_deliveries(request: web.Request) -> web.Response:
    deliveries = _store(request).webhooks.deliveries
    return web.json_response({"deliveries": [delivery.as_dict() for delivery in deliveries]})


def add_routes(app: web.Application) -> None:
    realm = PREFIX + "/realms/{realm}"
    router = app.router
    router.add_get(PREFIX + "/health", health)
    router.add_post(PREFIX + "/realms", create_realm)
    router.add_put(realm, reset_realm)
    router.add_get(realm, realm_summary)
    router.add_post(realm + "/refresh-tokens", issue_refresh_token)
    router.add_post(realm + "/expire-access-tokens", expire_access_tokens)
    router.add_post(realm + "/bulk-customers", bulk)
    router.add_get(realm + "/customers", list_customers)
    router.add_post(realm + "/customers", user_create_customer)
    router.add_get(realm + "/customers/{id}", get_customer)
    router.add_patch(realm + "/customers/{id}", user_edit_customer)
    router.add_post(realm + "/customers/{id}/merge", merge_customer)
    router.add_get(realm + "/invoices", list_invoices)
    router.add_post(realm + "/invoices", user_create_invoice)
    router.add_post(realm + "/invoices/{id}/payments", user_receive_payment)
    router.add_get(realm + "/limits", get_limits)
    router.add_put(realm + "/limits", set_limits)
    router.add_post(realm + "/limits/reset", reset_limit_counters)
    router.add_get(realm + "/faults", get_faults)
    router.add_put(realm + "/faults", set_faults)
    router.add_get(PREFIX + "/requests", get_requests)
    router.add_delete(PREFIX + "/requests", clear_requests)
    router.add_get(PREFIX + "/webhook", get_webhook)
    router.add_put(PREFIX + "/webhook", set_webhook)
    router.add_get(PREFIX + "/webhook/deliveries", webhook_deliveries)
