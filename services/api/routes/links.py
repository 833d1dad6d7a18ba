"""Manual link, delink, Create in QuickBooks, Create in Liscio (helper `links` fills it)."""

from __future__ import annotations

from services.api.routes import firm_router

router = firm_router("links")
