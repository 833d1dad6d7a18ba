"""Who each invoice made through the API was for (table `invoice_contacts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qbsync.db.pool import Db


@dataclass(frozen=True)
class InvoiceContact:
    realm_id: str
    invoice_id: str
    firm_id: str
    account_id: str
    contact_id: str
    contact_name: str | None


async def record_invoice_contact(db: Db, made: InvoiceContact) -> None:
    """Once per invoice: a retried request (QuickBooks answered it again) changes nothing."""
    await db.execute(
        "INSERT INTO invoice_contacts (realm_id, invoice_id, firm_id, account_id, contact_id,"
        " contact_name) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (realm_id, invoice_id) DO NOTHING",
        made.realm_id,
        made.invoice_id,
        made.firm_id,
        made.account_id,
        made.contact_id,
        made.contact_name,
    )


async def invoice_contact_names(
    db: Db, realm_id: str, invoice_ids: Sequence[str]
) -> dict[str, str | None]:
    """invoice id -> the contact's name, for the invoices of these that were made here."""
    if not invoice_ids:
        return {}
    rows = await db.fetch(
        "SELECT invoice_id, contact_name FROM invoice_contacts"
        " WHERE realm_id = $1 AND invoice_id = ANY($2::text[])",
        realm_id,
        list(invoice_ids),
    )
    return {r["invoice_id"]: r["contact_name"] for r in rows}
