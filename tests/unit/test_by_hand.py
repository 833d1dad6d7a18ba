"""What a firm admin does by hand (qbsync/sync/by_hand.py, creating.create_in_quickbooks)
on the in-memory unit of work and the real client against the in-process emulator: the
links and writes each leaves behind, who the audit names, what is refused, and that a
QuickBooks failure leaves nothing half-done."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from qbsync.domain.accounts import LISCIO_CREATE_EXPIRY
from qbsync.errors import Conflict, NotFound
from qbsync.kafka.topics import ACCOUNT_COMMANDS, SYNC_LINKS
from qbsync.quickbooks.backoff import RetryPolicy
from qbsync.quickbooks.client import QuickBooksClient
from qbsync.quickbooks.errors import QuickBooksUnavailable
from qbsync.quickbooks.tokens import InMemoryTokenStore
from qbsync.sync import copies
from qbsync.sync.account_events import handle_account_events
from qbsync.sync.by_hand import create_in_liscio, delink_by_hand, link_by_hand
from qbsync.sync.creating import create_in_quickbooks
from qbsync.sync.steps import match_firm
from schemas import AccountEvent
from tests.unit.test_use_cases import (
    FIRM,
    PHONE,
    World,
    commands,
    event,
    link_events,
    world,  # noqa: F401 (the fixture)
)

ADMIN = "u-admin"


def actors(of: World, account_id: str) -> list[tuple[str, str]]:
    """(action, actor) of every audit row of the account, in order"""
    return [(e.action, e.actor) for e in of.uow.state.audit if e.account_id == account_id]


@pytest.fixture
async def impatient(world: World) -> AsyncIterator[QuickBooksClient]:  # noqa: F811
    """A client that gives up at the first failure (QuickBooks down, for a test)."""
    refresh_token = await world.emulator.admin.issue_refresh_token(world.realm_id)
    client = QuickBooksClient(
        base_url=world.emulator.base_url,
        token_url=world.emulator.token_url,
        client_id=world.emulator.client_id,
        client_secret=world.emulator.client_secret,
        tokens=InMemoryTokenStore({world.realm_id: refresh_token}),
        retry=RetryPolicy(attempts=1),
    )
    yield client
    await client.aclose()


async def test_a_pair_linked_by_hand_gets_the_first_sync_merge_under_its_actor(
    world: World,  # noqa: F811
) -> None:
    customer = await world.customer_in_quickbooks("Quite Different Name", **PHONE)
    await world.import_customers()
    await copies.keep_accounts(
        world.uow, [event("a-1", "Acme Ltd", website="https://acme.example")]
    )

    link = await link_by_hand(world.uow, world.quickbooks, FIRM, "a-1", customer["Id"], actor=ADMIN)

    assert (link.customer_id, link.how) == (customer["Id"], "manual")
    assert world.links() == {"a-1": (customer["Id"], "manual")}
    assert world.uow.state.links[(FIRM, "a-1")].first_synced_at is not None
    # the first sync, both ways: the website to QuickBooks, the phone to Liscio
    stored = await world.quickbooks_customer(customer["Id"])
    assert stored["WebAddr"]["URI"] == "https://acme.example"
    assert stored["DisplayName"] == "Quite Different Name"  # names are never synced
    assert commands(world.uow) == {"a-1": {"phone": "512-555-0101"}}
    assert link_events(world.uow) == [("link.created", "a-1", "linked by a firm admin")]
    assert sorted(actors(world, "a-1")) == [
        ("field.written", ADMIN),
        ("field.written", ADMIN),
        ("link.created", ADMIN),
    ]


async def test_linking_by_hand_refuses_what_names_nothing_or_is_taken(
    world: World,  # noqa: F811
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    bolt = await world.customer_in_quickbooks("Bolt Inc")
    gone = await world.customer_in_quickbooks("Gone Co")
    await world.emulator.admin.edit_customer_as_user(world.realm_id, gone["Id"], {"Active": False})
    await world.import_customers()
    await copies.keep_accounts(
        world.uow,
        [
            event("a-acme", "Acme Ltd"),
            event("a-free", "Free Account"),
            event("a-arch", "Archived One", kind="account.archived"),
        ],
    )
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None)
    assert world.links() == {"a-acme": (acme["Id"], "auto")}

    async def refused(account_id: str, customer_id: str) -> Conflict | NotFound:
        with pytest.raises((Conflict, NotFound)) as caught:
            await link_by_hand(
                world.uow, world.quickbooks, FIRM, account_id, customer_id, actor=ADMIN
            )
        assert isinstance(caught.value, Conflict | NotFound)
        return caught.value

    assert isinstance(await refused("a-nobody", bolt["Id"]), NotFound)
    assert isinstance(await refused("a-free", "9999"), NotFound)
    taken = await refused("a-acme", bolt["Id"])
    assert isinstance(taken, Conflict)
    assert str(taken) == f"account a-acme is already linked to customer {acme['Id']}"
    taken = await refused("a-free", acme["Id"])
    assert str(taken) == f"customer {acme['Id']} is already linked to account a-acme"
    assert "archived" in str(await refused("a-arch", bolt["Id"]))
    assert "inactive" in str(await refused("a-free", gone["Id"]))
    # nothing of it was written
    assert world.links() == {"a-acme": (acme["Id"], "auto")}
    assert [e for e in world.uow.state.audit if e.actor == ADMIN] == []


async def test_a_sub_customer_may_be_linked_by_hand(world: World) -> None:  # noqa: F811
    parent = await world.customer_in_quickbooks("Parent Co")
    job = await world.customer_in_quickbooks(
        "Parent Co Job", Job=True, ParentRef={"value": parent["Id"]}
    )
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-job", "The Job")])

    link = await link_by_hand(world.uow, world.quickbooks, FIRM, "a-job", job["Id"], actor=ADMIN)

    assert world.links() == {"a-job": (job["Id"], "manual")}
    assert link.how == "manual"


async def test_a_link_whose_first_sync_quickbooks_fails_is_not_made(
    world: World,  # noqa: F811
    impatient: QuickBooksClient,
) -> None:
    customer = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-1", "Acme Ltd", phone="512-555-0199")])
    await world.emulator.admin.set_faults(world.realm_id, fault_5xx_rate=1)

    with pytest.raises(QuickBooksUnavailable):
        await link_by_hand(world.uow, impatient, FIRM, "a-1", customer["Id"], actor=ADMIN)

    assert world.links() == {}
    assert world.uow.state.audit == [] and world.uow.messages(SYNC_LINKS) == []
    await world.emulator.admin.set_faults(world.realm_id, fault_5xx_rate=0)
    await link_by_hand(world.uow, impatient, FIRM, "a-1", customer["Id"], actor=ADMIN)
    stored = await world.quickbooks_customer(customer["Id"])
    assert stored["PrimaryPhone"]["FreeFormNumber"] == "512-555-0199"


async def test_delinking_by_hand_keeps_both_records_and_names_its_actor(
    world: World,  # noqa: F811
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None)

    link = await delink_by_hand(world.uow, FIRM, "a-acme", actor=ADMIN)

    assert (link.customer_id, world.links()) == (acme["Id"], {})
    assert link_events(world.uow)[-1] == ("link.removed", "a-acme", "delinked by a firm admin")
    assert actors(world, "a-acme")[-1] == ("link.removed", ADMIN)
    assert (FIRM, "a-acme") in world.uow.state.accounts
    assert (await world.quickbooks_customer(acme["Id"]))["Active"] is True
    with pytest.raises(Conflict, match="is not linked"):
        await delink_by_hand(world.uow, FIRM, "a-acme", actor=ADMIN)
    with pytest.raises(NotFound):
        await delink_by_hand(world.uow, FIRM, "a-nobody", actor=ADMIN)


async def test_create_in_quickbooks_creates_a_prospect_too_and_links_it(
    world: World,  # noqa: F811
) -> None:
    await copies.keep_accounts(
        world.uow, [event("a-pro", "Asked For Inc", status="Prospect", phone="512-555-0404")]
    )

    created = await create_in_quickbooks(world.uow, world.quickbooks, FIRM, "a-pro", actor=ADMIN)

    (customer,) = await world.customers_named("Asked For Inc")
    assert (created.link.how, created.link.customer_id) == ("created", customer["Id"])
    assert created.customer.display_name == "Asked For Inc"
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "512-555-0404"
    assert world.links() == {"a-pro": (customer["Id"], "created")}
    assert world.uow.state.pending[(FIRM, "a-pro")].create.state == "done"
    assert actors(world, "a-pro") == [("link.created", ADMIN)]
    with pytest.raises(Conflict, match="already linked"):
        await create_in_quickbooks(world.uow, world.quickbooks, FIRM, "a-pro", actor=ADMIN)
    assert len(await world.customers_named("Asked For Inc")) == 1


async def test_create_in_quickbooks_of_a_name_quickbooks_has_names_the_customer(
    world: World,  # noqa: F811
) -> None:
    existing = await world.customer_in_quickbooks("Taken Name LLC")
    await copies.keep_accounts(world.uow, [event("a-taken", "taken name llc")])

    with pytest.raises(Conflict) as refused:
        await create_in_quickbooks(world.uow, world.quickbooks, FIRM, "a-taken", actor=ADMIN)

    assert f"QuickBooks customer {existing['Id']}" in str(refused.value)
    assert world.links() == {}
    assert len(await world.customers_named("Taken Name LLC")) == 1
    # finished as failed: nothing left for the pusher's reconciliation to redo
    assert await world.uow.direct.pending_creates.unfinished() == []


@pytest.mark.parametrize(
    "fault",
    [
        "fault_5xx_rate",  # refused unapplied: nothing is created
        "drop_rate",  # applied, the answer lost: the retry gets the customer created then
    ],
)
async def test_create_in_quickbooks_that_fails_midway_is_finished_once_by_the_retry(
    world: World,  # noqa: F811
    impatient: QuickBooksClient,
    fault: str,
) -> None:
    await copies.keep_accounts(world.uow, [event("a-1", "Flaky Times Ltd")])
    await world.emulator.admin.set_faults(world.realm_id, **{fault: 1})

    with pytest.raises(QuickBooksUnavailable):
        await create_in_quickbooks(world.uow, impatient, FIRM, "a-1", actor=ADMIN)

    assert world.links() == {} and world.uow.messages(SYNC_LINKS) == []
    pending = world.uow.state.pending[(FIRM, "a-1")].create
    assert pending.state == "pending"  # recorded before the call, with its requestid
    assert len(await world.customers_named("Flaky Times Ltd")) == (1 if fault == "drop_rate" else 0)

    await world.emulator.admin.set_faults(world.realm_id, **{fault: 0})
    created = await create_in_quickbooks(world.uow, impatient, FIRM, "a-1", actor=ADMIN)

    (customer,) = await world.customers_named("Flaky Times Ltd")
    assert created.link.customer_id == customer["Id"]
    assert world.links() == {"a-1": (customer["Id"], "created")}
    assert [key for key, _ in world.uow.messages(SYNC_LINKS)] == [f"{FIRM}:a-1"]


async def test_create_in_liscio_sends_one_command_and_links_liscios_answer(
    world: World,  # noqa: F811
) -> None:
    customer = await world.customer_in_quickbooks(
        "From QuickBooks LLC", **PHONE, WebAddr={"URI": "https://fq.example"}
    )
    await world.import_customers()

    command_id = await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN)
    assert await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN) == command_id

    ((key, value),) = world.uow.messages(ACCOUNT_COMMANDS)  # one command, asked twice
    assert key == f"{FIRM}:qbo:{customer['Id']}"
    command = json.loads(value)
    assert (command["command_id"], command["type"], command["account_id"]) == (
        command_id,
        "account.create",
        None,
    )
    assert command["name"] == "From QuickBooks LLC"
    assert command["fields"] == {"phone": "512-555-0101", "website": "https://fq.example"}
    assert command["source"] == {"realm_id": world.realm_id, "customer_id": customer["Id"]}

    # Meanwhile an account of the same name appears and a Sync Now runs: the customer
    # waits for its own account.
    await copies.keep_accounts(world.uow, [event("a-same", "from quickbooks llc")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None)
    assert world.links() == {}
    writes_before = await world.writes_seen()

    answer = AccountEvent.model_validate(
        {
            **event("a-new", "From QuickBooks LLC", phone="512-555-0101").model_dump(),
            "command_id": command_id,
        }
    )
    await handle_account_events(world.uow, world.quickbooks, [answer])

    assert world.links() == {"a-new": (customer["Id"], "created")}
    assert await world.writes_seen() == writes_before  # nothing created in QuickBooks
    assert len(await world.customers_named("From QuickBooks LLC")) == 1
    assert actors(world, "a-new")[0] == ("link.created", ADMIN)
    assert world.uow.state.liscio_creates[command_id].state == "done"
    # now linked: asking again is refused, naming the account
    with pytest.raises(Conflict, match="already linked to account a-new"):
        await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN)


def _answer(account_id: str, name: str, command_id: str) -> AccountEvent:
    """Liscio's `account.created` answering the command."""
    return AccountEvent.model_validate(
        {**event(account_id, name).model_dump(), "command_id": command_id}
    )


async def _unanswered_then_asked_again(world: World) -> tuple[str, str, str]:  # noqa: F811
    """A customer whose Create in Liscio Liscio did not answer within the expiry, asked
    again: (customer id, first command, second command)."""
    customer = await world.customer_in_quickbooks("Never Answered LLC")
    await world.import_customers()
    first = await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN)
    almost = datetime.now(UTC) + LISCIO_CREATE_EXPIRY - timedelta(minutes=1)
    assert await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN, now=almost) == first
    later = datetime.now(UTC) + LISCIO_CREATE_EXPIRY
    second = await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN, now=later)
    return customer["Id"], first, second


async def test_an_unanswered_create_in_liscio_may_be_asked_again_once_expired(
    world: World,  # noqa: F811
) -> None:
    customer_id, first, second = await _unanswered_then_asked_again(world)

    assert second == f"{first}.2"  # the same request's second attempt, recognisably
    states = world.uow.state.liscio_creates
    assert (states[first].state, states[second].state) == ("expired", "pending")
    sent = [json.loads(value) for _, value in world.uow.messages(ACCOUNT_COMMANDS)]
    assert [c["command_id"] for c in sent] == [first, second]
    assert sent[0]["source"] == sent[1]["source"]  # Liscio can tell they are one request
    assert await create_in_liscio(world.uow, FIRM, customer_id, actor=ADMIN) == second
    third_at = datetime.now(UTC) + 2 * LISCIO_CREATE_EXPIRY
    third = await create_in_liscio(world.uow, FIRM, customer_id, actor=ADMIN, now=third_at)
    assert third == f"{first}.3"


async def test_a_late_answer_to_the_expired_command_is_linked_and_the_retry_s_is_not(
    world: World,  # noqa: F811
) -> None:
    customer_id, first, second = await _unanswered_then_asked_again(world)

    await handle_account_events(
        world.uow, world.quickbooks, [_answer("a-first", "Never Answered LLC", first)]
    )
    assert world.links() == {"a-first": (customer_id, "created")}
    assert world.uow.state.liscio_creates[second].state == "failed"  # waits for nothing

    await handle_account_events(
        world.uow, world.quickbooks, [_answer("a-second", "Never Answered LLC", second)]
    )
    assert world.links() == {"a-first": (customer_id, "created")}  # one account linked
    assert world.uow.state.accounts[(FIRM, "a-second")].attention is not None


async def test_the_retry_answered_first_leaves_the_late_first_answer_for_attention(
    world: World,  # noqa: F811
) -> None:
    customer_id, first, second = await _unanswered_then_asked_again(world)

    await handle_account_events(
        world.uow, world.quickbooks, [_answer("a-second", "Never Answered LLC", second)]
    )
    await handle_account_events(
        world.uow, world.quickbooks, [_answer("a-first", "Never Answered LLC", first)]
    )

    assert world.links() == {"a-second": (customer_id, "created")}
    assert "already linked" in str(world.uow.state.accounts[(FIRM, "a-first")].attention)
    assert world.uow.state.liscio_creates[first].state == "failed"


async def test_a_customer_waiting_for_liscio_may_be_linked_by_hand_once_expired(
    world: World,  # noqa: F811
) -> None:
    customer = await world.customer_in_quickbooks("Linked Instead LLC")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-hand", "Another Name", status="Prospect")])
    command = await create_in_liscio(world.uow, FIRM, customer["Id"], actor=ADMIN)
    with pytest.raises(Conflict, match="waits for the account Liscio is creating"):
        await link_by_hand(world.uow, world.quickbooks, FIRM, "a-hand", customer["Id"], actor=ADMIN)

    await link_by_hand(
        world.uow,
        world.quickbooks,
        FIRM,
        "a-hand",
        customer["Id"],
        actor=ADMIN,
        liscio_expiry=timedelta(0),
    )

    assert world.links() == {"a-hand": (customer["Id"], "manual")}
    assert world.uow.state.liscio_creates[command].state == "expired"


async def test_create_in_liscio_refuses_unknown_and_linked_customers(
    world: World,  # noqa: F811
) -> None:
    acme = await world.customer_in_quickbooks("Acme Ltd")
    await world.import_customers()
    await copies.keep_accounts(world.uow, [event("a-acme", "Acme Ltd")])
    await match_firm(world.uow, world.quickbooks, FIRM, world.realm_id, None)

    with pytest.raises(NotFound):
        await create_in_liscio(world.uow, FIRM, "9999", actor=ADMIN)
    with pytest.raises(Conflict, match="already linked to account a-acme"):
        await create_in_liscio(world.uow, FIRM, acme["Id"], actor=ADMIN)
    with pytest.raises(Conflict, match="not connected"):
        await create_in_liscio(world.uow, "firm-unknown", acme["Id"], actor=ADMIN)
    sent = [json.loads(value)["type"] for _, value in world.uow.messages(ACCOUNT_COMMANDS)]
    assert "account.create" not in sent


async def test_an_account_created_answering_no_command_of_ours_is_a_new_account(
    world: World,  # noqa: F811
) -> None:
    stray = AccountEvent.model_validate(
        {**event("a-stray", "Stray Answer Co").model_dump(), "command_id": "not-ours"}
    )

    await handle_account_events(world.uow, world.quickbooks, [stray])

    (customer,) = await world.customers_named("Stray Answer Co")
    assert world.links() == {"a-stray": (customer["Id"], "created")}
