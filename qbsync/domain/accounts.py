"""Which records may be linked or created automatically."""

from __future__ import annotations

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
