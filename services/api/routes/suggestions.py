"""The suggestions routes of the integration API."""

from __future__ import annotations

from services.api.routes import firm_router

router = firm_router("suggestions")
