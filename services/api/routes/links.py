"""What a firm admin does by hand: link a pair, delink, Create in QuickBooks, Create in
Liscio. Each route hands over to its use case (qbsync/sync/by_hand.py,
qbsync/sync/creating.py) with the token's user as the actor the audit log keeps; the use
cases' refusals are problem+json answers (services/api/problems.py): an id that names
nothing 404, a state that forbids it 409 (already linked, not linked, an archived account,
an inactive or deleted customer, a name QuickBooks already has, not connected), QuickBooks
unavailable 503 with Retry-After, and then nothing is left half-done."""

from __future__ import annotations

from datetime import timedelta

from fastapi import Response
from pydantic import BaseModel, ConfigDict

from qbsync.errors import NotFound
from qbsync.sync.by_hand import create_in_liscio, delink_by_hand, link_by_hand
from qbsync.sync.creating import create_in_quickbooks
from services.api.auth import AdminAccess
from services.api.deps import Deps
from services.api.ids import AccountId, CustomerId, Id
from services.api.problems import problem_responses
from services.api.routes import firm_router
from services.api.schemas import Customer, Link

router = firm_router("links")


class LinkRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"account_id": "a-456", "customer_id": "58"}}
    )

    account_id: Id
    customer_id: Id


class CreatedInQuickBooks(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "link": {
                    "account_id": "a-456",
                    "customer_id": "58",
                    "realm_id": "9130350000000000",
                    "how": "created",
                    "linked_at": "2026-11-25T16:00:01Z",
                },
                "customer": {
                    "id": "58",
                    "realm_id": "9130350000000000",
                    "display_name": "Acme Tax LLC",
                    "active": True,
                    "parent_id": None,
                    "address": None,
                    "phone": "512-555-0100",
                    "website": None,
                },
            }
        }
    )

    link: Link
    customer: Customer


class CommandAccepted(BaseModel):
    """The `account.create` command sent to Liscio; its answer is linked when it comes."""

    model_config = ConfigDict(
        json_schema_extra={"example": {"command_id": "0b6f0c8e4f7a4c1e9d5a2b3c4d5e6f70"}}
    )

    command_id: str


@router.post(
    "/links",
    status_code=201,
    summary="Link an account to a customer by hand",
    description="The link (`how` = `manual`) and its first-sync merge, as for any new link"
    " (the merge's writes are audited under the same user). Sub-customers may be linked by"
    " hand; archived accounts and inactive or deleted customers may not (409).",
    responses=problem_responses(409, 503),
)
async def link_pair(body: LinkRequest, access: AdminAccess, deps: Deps) -> Link:
    link = await link_by_hand(
        deps.uow,
        deps.quickbooks,
        access.firm_id,
        body.account_id,
        body.customer_id,
        actor=access.user,
        liscio_expiry=timedelta(hours=deps.settings.QBSYNC_LISCIO_CREATE_EXPIRY_HOURS),
    )
    return Link.model_validate(link)


@router.delete(
    "/links/{account_id}",
    status_code=204,
    response_class=Response,
    summary="Delink an account",
    description="Both records stay; a `link.removed` event goes to `sync.links`. 409 when the"
    " account is not linked.",
    responses=problem_responses(409),
)
async def delink(account_id: AccountId, access: AdminAccess, deps: Deps) -> Response:
    await delink_by_hand(deps.uow, access.firm_id, account_id, actor=access.user)
    return Response(status_code=204)


@router.post(
    "/accounts/{account_id}/create-in-quickbooks",
    status_code=201,
    summary="Create the account's customer in QuickBooks and link them",
    description="`how` = `created`; a Prospect too (a person asked). Exactly once: a retry"
    " after a failure finishes the same create. QuickBooks already having the name: 409"
    " naming the customer that has it.",
    responses=problem_responses(409, 503),
)
async def create_customer(
    account_id: AccountId, access: AdminAccess, deps: Deps
) -> CreatedInQuickBooks:
    created = await create_in_quickbooks(
        deps.uow, deps.quickbooks, access.firm_id, account_id, actor=access.user
    )
    view = await deps.uow.direct.records.customer(created.link.realm_id, created.link.customer_id)
    if view is None:  # written in the same transaction as the link
        raise NotFound("customer", created.link.customer_id)
    return CreatedInQuickBooks(
        link=Link.model_validate(created.link), customer=Customer.model_validate(view)
    )


@router.post(
    "/customers/{customer_id}/create-in-liscio",
    status_code=202,
    summary="Ask Liscio for an account made from the customer",
    description="An `account.create` command on `liscio.account-commands`; the account"
    " Liscio's `account.created` event with this `command_id` carries is linked to the"
    " customer (`how` = `created`), and nothing is created in QuickBooks. Asked again before"
    " Liscio answers: the same command; once QBSYNC_LISCIO_CREATE_EXPIRY_HOURS (24) have"
    " passed without an answer, a new command `{first command_id}.{attempt}` (the records"
    " show the customer's `liscio_create` as `retryable`). A late answer to the first is"
    " still linked while the customer is not linked; one customer never gets two accounts.",
    responses=problem_responses(409),
)
async def create_account(
    customer_id: CustomerId, access: AdminAccess, deps: Deps
) -> CommandAccepted:
    expiry = timedelta(hours=deps.settings.QBSYNC_LISCIO_CREATE_EXPIRY_HOURS)
    command_id = await create_in_liscio(
        deps.uow, access.firm_id, customer_id, actor=access.user, expiry=expiry
    )
    return CommandAccepted(command_id=command_id)
