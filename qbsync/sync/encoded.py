"""The JSON of the messages a first sync writes by the thousand (a link event and a fill
command per pair), encoded with orjson from plain dicts: pydantic's model and its JSON
cost about 25 µs a message. Each function gives exactly the JSON of the message's model
(`model_dump_json(exclude_unset=True)`, schemas/messages.py): the topics' shapes are
contracts, and tests/unit/test_encoded.py checks the two agree."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import orjson

from qbsync.db.links import Link
from qbsync.domain.fields import FIELD_NAMES, FieldName

# pydantic writes an aware UTC datetime as "...Z", orjson as "...+00:00" unless told.
_OPTIONS = orjson.OPT_UTC_Z


def link_event_json(
    link: Link,
    event_id: str,
    change: Literal["link.created", "link.removed"],
    reason: str,
    at: datetime,
) -> str:
    """A `sync.links` value (LinkEvent)."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": change,
            "firm_id": link.firm_id,
            "account_id": link.account_id,
            "realm_id": link.realm_id,
            "customer_id": link.customer_id,
            "how": link.how,
            "reason": reason,
            "at": at,
        },
        option=_OPTIONS,
    ).decode()


def fill_command_json(
    link: Link, command_id: str, fields: dict[FieldName, Any], issued_at: datetime
) -> str:
    """A `liscio.account-commands` value (AccountCommand) of type account.fill_fields;
    `fields` as `to_json` gives them (an address with all its parts)."""
    return orjson.dumps(
        {
            "command_id": command_id,
            "type": "account.fill_fields",
            "firm_id": link.firm_id,
            "account_id": link.account_id,
            # AccountFields' order (FIELD_NAMES'), whatever the order of the plan
            "fields": {name: fields[name] for name in FIELD_NAMES if name in fields},
            "source": {"realm_id": link.realm_id, "customer_id": link.customer_id},
            "issued_at": issued_at,
        },
        option=_OPTIONS,
    ).decode()
