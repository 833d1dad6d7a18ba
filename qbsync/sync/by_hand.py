"""What a firm admin does by hand on the integration page (DOMAIN.md rules 7, 8, 10):
link a pair, delink, and Create in Liscio (Create in QuickBooks is `creating.py`'s, beside
the pusher's creates). Each takes the person's id as `actor`, which the audit log keeps
for the link and for every write of its first sync. What cannot be done is refused before
anything is written: `NotFound` for an id that names nothing, `Conflict` (naming the
other side) for a state that forbids it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from qbsync.db.links import Link
from qbsync.domain.accounts import (
    LISCIO_CREATE_EXPIRY,
    customer_may_be_linked,
    liscio_create_expired,
    retry_command_id,
)
from qbsync.domain.fields import FIELD_NAMES, to_json
from qbsync.errors import Conflict, NotFound
from qbsync.kafka.topics import ACCOUNT_COMMANDS
from qbsync.sync.creating import refuse_linked_account
from qbsync.sync.integration import usable_connection
from qbsync.sync.linking import link_with_first_sync, remove_link
from qbsync.sync.ports import CustomerGateway
from qbsync.sync.unit_of_work import Repositories, UnitOfWork
from schemas import AccountCommand, AccountEvent

LINKED_BY_HAND = "linked by a firm admin"
DELINKED_BY_HAND = "delinked by a firm admin"
CREATED_IN_LISCIO = "account created in Liscio for a QuickBooks customer"


async def link_by_hand(
    uow: UnitOfWork,
    quickbooks: CustomerGateway,
    firm_id: str,
    account_id: str,
    customer_id: str,
    *,
    actor: str,
    liscio_expiry: timedelta = LISCIO_CREATE_EXPIRY,
) -> Link:
    """Link the pair (`manual`) with the first-sync merge of any new link, in one
    transaction: QuickBooks failing takes the link back too. Sub-customers may be linked
    by hand; archived accounts, inactive or deleted customers may not, nor a customer
    whose Create in Liscio waits for Liscio's answer (until `liscio_expiry` has passed)."""
    realm_id = (await usable_connection(uow, firm_id)).realm_id
    account = await uow.direct.accounts.get(firm_id, account_id)
    if account is None:
        raise NotFound("account", account_id)
    customer = await uow.direct.customers.get(realm_id, customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    if account.archived:
        raise Conflict(f"account {account_id} is archived")
    if not customer_may_be_linked(customer.active, customer.deleted, None):
        raise Conflict(
            f"customer {customer_id} is inactive or deleted in QuickBooks",
        )
    async with uow.for_accounts(firm_id, [account_id], calls_quickbooks=True) as tx:
        await _refuse_linked_pair(tx, firm_id, realm_id, account_id, customer_id)
        waiting = (await tx.liscio_creates.waiting(realm_id, [customer_id])).get(customer_id)
        if waiting is not None:
            if not liscio_create_expired(waiting.asked_at, datetime.now(UTC), liscio_expiry):
                raise Conflict(
                    f"customer {customer_id} waits for the account Liscio is creating for it",
                )
            await tx.liscio_creates.expire(waiting.command_id)  # a late answer: attention
        link = await link_with_first_sync(
            tx,
            quickbooks,
            firm_id,
            realm_id,
            account_id,
            customer_id,
            how="manual",
            reason=LINKED_BY_HAND,
            actor=actor,
        )
        assert link is not None  # both sides were free under the account's lock
        await tx.accounts.mark_for_attention(firm_id, account_id, None)
        return link


async def _refuse_linked_pair(
    tx: Repositories, firm_id: str, realm_id: str, account_id: str, customer_id: str
) -> None:
    """Either side linked already: refused, naming the other side."""
    await refuse_linked_account(tx, firm_id, account_id)
    await _refuse_linked_customer(tx, realm_id, customer_id)


async def _refuse_linked_customer(tx: Repositories, realm_id: str, customer_id: str) -> None:
    for theirs in await tx.links.of_customers(realm_id, [customer_id]):
        raise Conflict(
            f"customer {customer_id} is already linked to account {theirs.account_id}",
        )


async def delink_by_hand(uow: UnitOfWork, firm_id: str, account_id: str, *, actor: str) -> Link:
    """Remove the account's link; both records stay, `link.removed` goes to sync.links."""
    async with uow.for_accounts(firm_id, [account_id]) as tx:
        link = await remove_link(tx, firm_id, account_id, reason=DELINKED_BY_HAND, actor=actor)
    if link is not None:
        return link
    if await uow.direct.accounts.get(firm_id, account_id) is None:
        raise NotFound("account", account_id)
    raise Conflict(f"account {account_id} is not linked")


async def create_in_liscio(
    uow: UnitOfWork,
    firm_id: str,
    customer_id: str,
    *,
    actor: str,
    expiry: timedelta = LISCIO_CREATE_EXPIRY,
    now: datetime | None = None,
) -> str:
    """Ask Liscio for an account made from the customer (`account.create`, through the
    outbox); returns the command's id. The command is remembered, so that the pusher links
    the account Liscio's answer carries (`answer_liscio_create`) and nothing links the
    customer elsewhere meanwhile. Asked again while Liscio has not answered: the same
    command, not a second one; once `expiry` has passed without an answer, a new command
    (`retry_command_id`), the first one expired but still linked if it is answered first."""
    realm_id = (await usable_connection(uow, firm_id)).realm_id
    customer = await uow.direct.customers.get(realm_id, customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    if not customer_may_be_linked(customer.active, customer.deleted, None):
        raise Conflict(
            f"customer {customer_id} is inactive or deleted in QuickBooks",
        )
    now = now or datetime.now(UTC)
    async with uow.begin() as tx:
        await _refuse_linked_customer(tx, realm_id, customer_id)
        waiting = (await tx.liscio_creates.waiting(realm_id, [customer_id])).get(customer_id)
        retrying = None
        if waiting is not None and liscio_create_expired(waiting.asked_at, now, expiry):
            await tx.liscio_creates.expire(waiting.command_id)
            retrying = waiting
        command_id = (
            retry_command_id(retrying.retry_of or retrying.command_id, retrying.attempt + 1)
            if retrying
            else uuid.uuid4().hex
        )
        create, new = await tx.liscio_creates.begin(
            firm_id, realm_id, customer_id, command_id, actor, retrying
        )
        if new:
            fields = {
                name: to_json(customer.fields.get(name))
                for name in FIELD_NAMES
                if customer.fields.get(name) is not None
            }
            command = AccountCommand.model_validate(
                {
                    "command_id": create.command_id,
                    "type": "account.create",
                    "firm_id": firm_id,
                    "account_id": None,
                    "name": customer.display_name,
                    "fields": fields,
                    "source": {"realm_id": realm_id, "customer_id": customer_id},
                    "issued_at": now,
                }
            )
            await tx.outbox.enqueue([(ACCOUNT_COMMANDS, f"{firm_id}:qbo:{customer_id}", command)])
    return create.command_id


async def answer_liscio_create(
    uow: UnitOfWork, quickbooks: CustomerGateway, event: AccountEvent
) -> str | None:
    """An `account.created` event answering our `account.create` command: its account is
    linked to the command's customer (`created`; the first sync when QuickBooks can be
    called, otherwise owed to the next Sync Now) and nothing is created in QuickBooks.
    Returns the outcome, or None when the event answers no command of ours (then it is an
    ordinary new account)."""
    if event.type != "account.created" or event.command_id is None:
        return None
    create = await uow.direct.liscio_creates.of_command(event.command_id)
    if create is None or create.firm_id != event.firm_id:
        return None
    firm_id, account_id = event.firm_id, event.account.id
    if create.state == "done" and create.account_id == account_id:
        return "already_linked"
    connection = await uow.direct.connections.of_firm(firm_id)
    callable_ = (
        connection is not None and connection.usable and connection.realm_id == create.realm_id
    )
    # An expired command answered late is linked as a waiting one is, while the customer
    # is not linked yet; the customer's newer command then waits for nothing.
    answerable = create.state in ("pending", "expired")
    async with uow.for_accounts(firm_id, [account_id], calls_quickbooks=callable_) as tx:
        problem = None
        if not answerable:
            problem = f"command {create.command_id} was answered already (by {create.account_id})"
        else:
            try:
                await _refuse_linked_pair(
                    tx, firm_id, create.realm_id, account_id, create.customer_id
                )
            except Conflict as exc:
                problem = str(exc)
        if problem is not None:
            await tx.accounts.mark_for_attention(firm_id, account_id, problem)
            if answerable:
                await tx.liscio_creates.finish(
                    create.command_id, account_id=account_id, failure=problem
                )
            return "attention"
        newer = await tx.liscio_creates.waiting(create.realm_id, [create.customer_id])
        for superseded in newer.values():
            if superseded.command_id != create.command_id:
                await tx.liscio_creates.finish(
                    superseded.command_id,
                    account_id=None,
                    failure=f"the earlier command {create.command_id} was answered first",
                )
        await link_with_first_sync(
            tx,
            quickbooks,
            firm_id,
            create.realm_id,
            account_id,
            create.customer_id,
            how="created",
            reason=CREATED_IN_LISCIO,
            actor=create.actor,
            first_sync=callable_,
        )
        await tx.liscio_creates.finish(create.command_id, account_id=account_id)
    return "linked_created_in_liscio"
