"""The emulator's aiohttp application: QuickBooks API routes, OAuth routes, admin routes."""

from __future__ import annotations

from aiohttp import web

from qbsync.emulator import admin, oauth
from qbsync.emulator.gate import STORE_KEY, handle_api
from qbsync.emulator.store import Store

API_ROUTE = "/v3/company/{realm}/{tail:.*}"


def build_app(store: Store) -> web.Application:
    app = web.Application(middlewares=[admin.admin_errors], client_max_size=8 * 1024**2)
    app[STORE_KEY] = store
    app.router.add_route("GET", API_ROUTE, handle_api)
    app.router.add_route("POST", API_ROUTE, handle_api)
    oauth.add_routes(app)
    admin.add_routes(app)

    async def webhooks(_: web.Application) -> None:
        await store.webhooks.start()

    async def stop_webhooks(_: web.Application) -> None:
        await store.webhooks.stop()

    app.on_startup.append(webhooks)
    app.on_cleanup.append(stop_webhooks)
    return app
