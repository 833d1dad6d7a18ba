"""A linked account's invoices (helper `invoices` fills it)."""

from __future__ import annotations

from services.api.routes import firm_router

router = firm_router("invoices")
