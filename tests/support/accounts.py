"""Liscio's account events, as tests make them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from schemas import AccountEvent


def account_event(
    firm_id: str,
    account_id: str,
    name: str,
    *,
    contacts: Sequence[dict[str, Any]] = (),
    kind: str = "account.created",
    status: str | None = "Client",
    at: datetime | None = None,
    **fields: Any,
) -> AccountEvent:
    """An event carrying the account's full state, with a fresh event id."""
    return AccountEvent.model_validate(
        {
            "event_id": uuid.uuid4().hex,
            "type": kind,
            "occurred_at": at or datetime.now(UTC),
            "firm_id": firm_id,
            "account": {
                "id": account_id,
                "name": name,
                "status": status,
                "contacts": list(contacts),
                **fields,
            },
        }
    )
