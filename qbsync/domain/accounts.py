"""Which records may be linked or created automatically."""

from __future__ import annotations

from datetime import datetime, timedelta

PROSPECT = "prospect"
ARCHIVED_IN_LISCIO = "account archived in Liscio"


def is_prospect(status: str | None) -> bool:
    """Prospect is compared case-insensitively (CONTRACTS.md, AccountEvent)."""
    return status is not None and status.strip().casefold() == PROSPECT


def may_create_in_quickbooks(status: str | None, archived: bool) -> bool:
    """A new Liscio account is created in QuickBooks unless it is a Prospect."""
    return not archived and not is_prospect(status)


def customer_may_be_linked(active: bool, deleted: bool, parent_id: str | None) -> bool:
    """Inactive customers are deleted ones. Sub-customers (jobs of a parent customer) are
    never linked automatically: a Liscio account is a client, which is the parent."""
    return active and not deleted and parent_id is None


def delink_reason(
    account_archived: bool, customer_active: bool, customer_deleted: bool
) -> str | None:
    """Why a link must go, or None. Nothing is ever auto-deleted: an archived account's
    customer stays in QuickBooks, a deactivated customer's account stays in Liscio."""
    if account_archived:
        return ARCHIVED_IN_LISCIO
    if customer_deleted:
        return "customer deleted or merged away in QuickBooks"
    if not customer_active:
        return "customer made inactive in QuickBooks"
    return None


# How long a Create in Liscio waits for Liscio's answer before a person may ask again (or
# link the customer by hand). Liscio answers in seconds when it is up; a day outlasts an
# outage of its consumer and a night without anyone to fix it, while a customer held
# longer than a working day is a customer nobody can work on. The idempotency window of
# the API is a day too, so a retry never meets the first request's remembered answer.
LISCIO_CREATE_EXPIRY = timedelta(hours=24)


def liscio_create_expired(asked_at: datetime | None, now: datetime, expiry: timedelta) -> bool:
    """Whether a Create in Liscio asked at `asked_at` and still unanswered may be asked
    again: its command may still be answered late, then linked only if it still can be."""
    return asked_at is not None and now - asked_at >= expiry


def retry_command_id(first_command_id: str, attempt: int) -> str:
    """The command id of a Create in Liscio asked again: the first command's id and the
    attempt, so that the two are recognisably the same request of the same customer (their
    `source` and Kafka key are the same too)."""
    return f"{first_command_id}.{attempt}"
