"""A new Liscio account gets its QuickBooks customer (DOMAIN.md rule 6).

First QuickBooks itself is asked for customers of the same name (ignoring case): exactly
one that nobody links yet is linked (`auto`) with the first-sync merge; none means the
customer is created (`created`) from the account's name and fields. QuickBooks refusing
the name (6240: it belongs to an inactive customer, a vendor or an employee) or several
candidates put the account up for a person's attention.

Exactly once in effect: the create's requestid is derived from the event and recorded
before the call; a retry after a crash (redelivery) reuses it, so QuickBooks answers with
the customer it already created. A create whose account is found linked is settled by that
link, so a later delink never brings it back.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from qbsync.db.customers import StoredCustomer
from qbsync.db.links import Link
from qbsync.domain.accounts import customer_may_be_linked
from qbsync.errors import Conflict, NotFound
from qbsync.kafka.topics import QBO_CUSTOMERS
from qbsync.quickbooks.errors import DuplicateNameError, QuickBooksValidationError
from qbsync.quickbooks.mapping import customer_record, new_customer_body
from qbsync.sync.field_sync import stable_id, sync_account
from qbsync.sync.integration import usable_connection
from qbsync.sync.linking import How, link_with_first_sync
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.unit_of_work import Repositories, UnitOfWork

log = logging.getLogger("qbsync.sync.creating")


@dataclass(frozen=True)
class CreateOutcome:
    outcome: str  # "created" | "linked" | "already_linked" | "was_linked" | "attention"
    customer_id: str | None = None
    reason: str | None = None


async def create_or_link(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    account_id: str,
    event_id: str,
) -> CreateOutcome:
    link = await uow.direct.links.of_account(firm_id, account_id)
    if link is not None:
        # A create recorded before the account was linked (by Sync Now, say) is settled by
        # that link: left unfinished, it would be "finished" after a later delink.
        await uow.direct.pending_creates.finish(firm_id, account_id, customer_id=link.customer_id)
        await sync_account(uow, quickbooks, firm_id, account_id, reason="Liscio account changed")
        return CreateOutcome("already_linked", link.customer_id)
    pending = await uow.direct.pending_creates.begin(
        firm_id, account_id, stable_id("create", firm_id, account_id, event_id), event_id
    )
    if pending.state == "done":
        return CreateOutcome("already_linked", pending.customer_id)

    async with uow.for_accounts(firm_id, [account_id], calls_quickbooks=True) as tx:
        link = await tx.links.of_account(firm_id, account_id)
        if link is not None:  # linked while the create was being recorded
            await tx.pending_creates.finish(firm_id, account_id, customer_id=link.customer_id)
            return CreateOutcome("already_linked", link.customer_id)
        if await tx.audit.ever_linked(firm_id, account_id):
            # Linked (by Sync Now, say) and delinked since, while this create waited: the
            # pusher lagging, or a retry after a crash. It is no new account, and rule 9
            # keeps it delinked.
            await tx.pending_creates.finish(firm_id, account_id, customer_id=None)
            return CreateOutcome("was_linked")
        account = await tx.accounts.get(firm_id, account_id)
        if account is None:
            return CreateOutcome("attention", reason="account unknown")

        how: How
        if pending.retry:
            # Ask for the create again with the same requestid first: QuickBooks answers with
            # the customer the crashed attempt created, if it got that far.
            try:
                customer = await quickbooks.create_customer(
                    realm_id,
                    new_customer_body(account.name, account.fields),
                    request_id=pending.request_id,
                )
                how, why = "created", "new Liscio account created in QuickBooks"
            except DuplicateNameError:
                found = await _free_customers_named(tx, quickbooks, realm_id, account.name)
                if len(found) != 1:
                    return await _attention(tx, firm_id, account_id, _refusal(account.name, found))
                customer, how, why = found[0], "auto", "new Liscio account: QuickBooks has the name"
        else:
            found = await _free_customers_named(tx, quickbooks, realm_id, account.name)
            if len(found) > 1:
                return await _attention(tx, firm_id, account_id, _refusal(account.name, found))
            if found:
                customer, how, why = found[0], "auto", "new Liscio account: QuickBooks has the name"
            else:
                try:
                    customer = await quickbooks.create_customer(
                        realm_id,
                        new_customer_body(account.name, account.fields),
                        request_id=pending.request_id,
                    )
                except (DuplicateNameError, QuickBooksValidationError) as exc:
                    return await _attention(
                        tx, firm_id, account_id, f"QuickBooks refused the customer: {exc}"
                    )
                how, why = "created", "new Liscio account created in QuickBooks"

        link = await _keep_and_link(
            tx, quickbooks, firm_id, realm_id, account_id, customer, how=how, reason=why
        )
        return CreateOutcome("created" if how == "created" else "linked", link.customer_id)


async def _keep_and_link(
    tx: Repositories,
    quickbooks: CustomerGateway,
    firm_id: str,
    realm_id: str,
    account_id: str,
    customer: dict[str, Any],
    *,
    how: How,
    reason: str,
    actor: str = "sync",
) -> Link:
    """The customer QuickBooks answered with, kept (and on its way to qbo.customers) and
    linked to the account with its first sync (for a created customer there is nothing
    left to do); the account's create is finished. Inside the transaction that holds the
    account's lock."""
    record = customer_record(realm_id, customer, source="write", firm_id=firm_id)
    await tx.customers.store([record])
    await tx.outbox.enqueue([(QBO_CUSTOMERS, f"{realm_id}:{record.customer_id}", record)])
    link = await link_with_first_sync(
        tx,
        quickbooks,
        firm_id,
        realm_id,
        account_id,
        record.customer_id,
        how=how,
        reason=reason,
        actor=actor,
    )
    if link is None:  # the caller checked under the lock: the customer's link is new
        raise Conflict(f"customer {record.customer_id} is already linked")
    await tx.accounts.mark_for_attention(firm_id, account_id, None)
    await tx.pending_creates.finish(firm_id, account_id, customer_id=record.customer_id)
    return link


async def _free_customers_named(
    tx: Repositories, quickbooks: CustomerGateway, realm_id: str, name: str
) -> list[dict[str, Any]]:
    """Linkable customers QuickBooks itself has under this name (ignoring case) that no
    account is linked to yet, nor waits for the account Liscio is creating for it."""
    awaiting = await tx.liscio_creates.awaiting(realm_id)
    candidates = [
        c
        for c in await quickbooks.find_customers_by_name(realm_id, name)
        if customer_may_be_linked(
            bool(c.get("Active", True)), False, (c.get("ParentRef") or {}).get("value")
        )
        and str(c["Id"]) not in awaiting
    ]
    linked = {
        link.customer_id
        for link in await tx.links.of_customers(realm_id, [str(c["Id"]) for c in candidates])
    }
    return [c for c in candidates if str(c["Id"]) not in linked]


def _refusal(name: str, found: list[dict[str, Any]]) -> str:
    if found:
        return f"{len(found)} QuickBooks customers are named '{name}': link one by hand"
    return (
        f"QuickBooks refused the name '{name}'"
        " (it belongs to an inactive customer, a vendor or an employee)"
    )


async def _attention(tx: Repositories, firm_id: str, account_id: str, reason: str) -> CreateOutcome:
    await tx.accounts.mark_for_attention(firm_id, account_id, reason)
    await tx.pending_creates.finish(firm_id, account_id, customer_id=None, failure=reason)
    return CreateOutcome("attention", reason=reason)


@dataclass(frozen=True)
class CreatedInQuickBooks:
    link: Link
    customer: StoredCustomer


async def create_in_quickbooks(
    uow: UnitOfWork, quickbooks: CustomerGateway, firm_id: str, account_id: str, *, actor: str
) -> CreatedInQuickBooks:
    """Create in QuickBooks, as a firm admin asks for an unlinked account (a Prospect too:
    a person asked). Exactly once, as the pusher's creates: the requestid is recorded
    before the call, and an attempt that failed midway (QuickBooks unavailable: raised,
    nothing linked) is finished by the next one with the same requestid, which QuickBooks
    answers with the customer it may already have created. QuickBooks already having the
    name (6240) is refused, naming the customer that has it."""
    realm_id = (await usable_connection(uow, firm_id)).realm_id
    account = await uow.direct.accounts.get(firm_id, account_id)
    if account is None:
        raise NotFound("account", account_id)
    if account.archived:
        raise Conflict(f"account {account_id} is archived")
    await refuse_linked_account(uow.direct, firm_id, account_id)
    pending = await uow.direct.pending_creates.begin(
        firm_id, account_id, uuid.uuid4().hex, f"created by hand by {actor}"
    )
    if pending.state == "done":  # its link was removed since
        raise Conflict(
            f"account {account_id} was created in (or linked to) QuickBooks before, as customer"
            f" {pending.customer_id}: link that customer by hand",
        )
    refusal: Exception | None = None
    async with uow.for_accounts(firm_id, [account_id], calls_quickbooks=True) as tx:
        try:
            await refuse_linked_account(tx, firm_id, account_id)
            customer = await quickbooks.create_customer(
                realm_id,
                new_customer_body(account.name, account.fields),
                request_id=pending.request_id,
            )
        except DuplicateNameError:
            refusal = await _name_taken(quickbooks, realm_id, account.name)
        except (QuickBooksValidationError, Conflict) as exc:
            refusal = exc
        if refusal is not None:
            # Finished as failed (committed): nothing is left for a reconciliation to redo.
            await tx.pending_creates.finish(
                firm_id, account_id, customer_id=None, failure=str(refusal)
            )
        else:
            link = await _keep_and_link(
                tx,
                quickbooks,
                firm_id,
                realm_id,
                account_id,
                customer,
                how="created",
                reason="created in QuickBooks by a firm admin",
                actor=actor,
            )
            stored = await tx.customers.get(realm_id, link.customer_id)
    if refusal is not None:
        raise refusal
    assert stored is not None
    return CreatedInQuickBooks(link, stored)


async def refuse_linked_account(tx: Repositories, firm_id: str, account_id: str) -> None:
    """Conflict naming the customer when the account is linked already."""
    link = await tx.links.of_account(firm_id, account_id)
    if link is not None:
        raise Conflict(
            f"account {account_id} is already linked to customer {link.customer_id}",
        )


async def _name_taken(quickbooks: CustomerGateway, realm_id: str, name: str) -> Conflict:
    """6240, naming the customer that has the name (when it is an active customer)."""
    found = await quickbooks.find_customers_by_name(realm_id, name)
    if found:
        existing = found[0]
        return Conflict(
            f"QuickBooks customer {existing['Id']} ('{existing.get('DisplayName')}') already"
            f" has the name '{name}': link the account to it instead",
        )
    return Conflict(
        f"QuickBooks already has the name '{name}' (an inactive customer, a vendor or an employee)"
    )
