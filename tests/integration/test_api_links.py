"""What a firm admin does by hand, through the HTTP API on the real stack (the API, the
importer, matcher and pusher as processes, Kafka, PostgreSQL, the QuickBooks emulator):
manual link, delink, Create in QuickBooks, Create in Liscio; who may (staff 403, another
firm 404), an idempotent replay, QuickBooks refusing the name (409) or unavailable (503,
nothing half-done, the retry finishing once), and Liscio's answer linked end to end."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from qbsync.db.accounts import get_account
from qbsync.db.customers import get_customer
from qbsync.db.links import link_of_account
from qbsync.demo.liscio import LiscioAccount
from tests.integration.conftest import ApiSystem
from tests.integration.system import Firm, System, find
from tests.support.api import bearer
from tests.support.polling import eventually

ADMIN, STAFF = "u-admin", "u-staff"


@pytest.fixture
def system(api_system: ApiSystem) -> System:
    return api_system.system


@pytest.fixture
def api(api_system: ApiSystem) -> httpx.AsyncClient:
    return api_system.client


async def stored(
    firm: Firm, accounts: tuple[str, ...] = (), customers: tuple[str, ...] = ()
) -> None:
    """Wait until the services keep the accounts and the customers (what the API reads)."""
    pool = firm.system.pool

    async def kept() -> bool:
        for account_id in accounts:
            if await get_account(pool, firm.firm_id, account_id) is None:
                return False
        for customer_id in customers:
            if await get_customer(pool, firm.realm_id, customer_id) is None:
                return False
        return True

    await eventually(kept, timeout=60, what="accounts and customers stored")


async def prospect(firm: Firm, name: str, **fields: Any) -> str:
    """An unlinked account (a Prospect: the pusher creates nothing for it)."""
    account_id = f"a-{uuid.uuid4().hex[:10]}"
    await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect", **fields))
    return account_id


async def audit_actors(firm: Firm, account_id: str) -> list[tuple[str, str]]:
    rows = await firm.system.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE firm_id = $1 AND account_id = $2 ORDER BY id",
        firm.firm_id,
        account_id,
    )
    return [(r["action"], r["actor"]) for r in rows]


async def test_an_admin_links_a_pair_by_hand_with_its_first_sync_then_delinks_it(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm()
    customer_id = await firm.add_customer(
        "Quite Another Name", PrimaryPhone={"FreeFormNumber": "512-555-0110"}
    )
    account_id = await prospect(firm, "Hand Linked LLC", website="https://hand.example")
    await stored(firm, (account_id,))
    await firm.sync()  # the customer into the stored copy (names differ: nothing is linked)
    base = f"/v1/firms/{firm.firm_id}"

    answer = await api.post(
        f"{base}/links",
        json={"account_id": account_id, "customer_id": customer_id},
        headers=bearer(firm.firm_id),
    )

    assert answer.status_code == 201, answer.text
    link = answer.json()
    assert (link["account_id"], link["customer_id"], link["realm_id"], link["how"]) == (
        account_id,
        customer_id,
        firm.realm_id,
        "manual",
    )
    # the first sync: Liscio's website to QuickBooks, QuickBooks' phone to Liscio
    customer = await firm.customer(customer_id)
    assert customer["WebAddr"]["URI"] == "https://hand.example"
    assert customer["DisplayName"] == "Quite Another Name"
    await eventually(
        lambda: _account_phone(firm, account_id),
        timeout=60,
        what="the phone filled in Liscio",
    )
    assert sorted(await audit_actors(firm, account_id)) == [
        ("field.written", ADMIN),
        ("field.written", ADMIN),
        ("link.created", ADMIN),
    ]
    again = await api.post(
        f"{base}/links",
        json={"account_id": account_id, "customer_id": customer_id},
        headers=bearer(firm.firm_id),
    )
    assert again.status_code == 409
    assert again.json()["detail"] == (
        f"account {account_id} is already linked to customer {customer_id}"
    )

    gone = await api.delete(f"{base}/links/{account_id}", headers=bearer(firm.firm_id))

    assert gone.status_code == 204
    assert await link_of_account(system.pool, firm.firm_id, account_id) is None
    events = await eventually(
        lambda: _events_of(firm, account_id, "link.removed"), timeout=30, what="link.removed"
    )
    assert events[0]["customer_id"] == customer_id and events[0]["how"] == "manual"
    assert (await firm.customer(customer_id))["Active"] is True  # both records stay
    assert await get_account(system.pool, firm.firm_id, account_id) is not None
    assert (await audit_actors(firm, account_id))[-1] == ("link.removed", ADMIN)
    not_linked = await api.delete(f"{base}/links/{account_id}", headers=bearer(firm.firm_id))
    assert not_linked.status_code == 409
    assert not_linked.headers["content-type"] == "application/problem+json"


async def _account_phone(firm: Firm, account_id: str) -> bool:
    return firm.liscio.accounts[account_id].phone == "512-555-0110"


async def _events_of(firm: Firm, account_id: str, kind: str) -> list[dict[str, Any]]:
    return find(await firm.link_events(), type=kind, account_id=account_id)


async def test_links_refused_name_the_other_side_and_change_nothing(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm({"name": "Linked Already Co"}, {"name": "Free Customer Co"})
    linked = await prospect(firm, "Linked Already Co")
    free = await prospect(firm, "Some Free Account")
    await stored(firm, (linked, free))
    await firm.sync()  # links the equal names (a Prospect whose name QuickBooks has)
    link = await firm.link_of(linked)
    assert link is not None
    customers = {c["DisplayName"]: c["Id"] for c in await system.admin.customers(firm.realm_id)}
    base, headers = f"/v1/firms/{firm.firm_id}", bearer(firm.firm_id)

    async def post(account_id: str, customer_id: Any) -> httpx.Response:
        return await api.post(
            f"{base}/links",
            json={"account_id": account_id, "customer_id": customer_id},
            headers=headers,
        )

    assert (await post("a-nobody", customers["Free Customer Co"])).status_code == 404
    assert (await post(free, "99999")).status_code == 404
    taken = await post(free, link["customer_id"])
    assert taken.status_code == 409
    assert taken.json()["detail"] == (
        f"customer {link['customer_id']} is already linked to account {linked}"
    )
    assert (await post(free, 12)).status_code == 422  # a number is not an id
    assert (await post("", customers["Free Customer Co"])).status_code == 422
    assert (await api.delete(f"{base}/links/a-nobody", headers=headers)).status_code == 404
    assert await link_of_account(system.pool, firm.firm_id, free) is None
    assert await audit_actors(firm, free) == []


async def test_staff_gets_403_and_another_firms_admin_404_on_every_route(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm({"name": "Theirs Co"})
    other = await system.new_firm()
    account_id = await prospect(firm, "Staff Tried Co")
    await prospect(other, "Other Firm Exists")
    await stored(firm, (account_id,))
    await firm.sync()
    customer_id = (await system.admin.customers(firm.realm_id))[0]["Id"]
    base = f"/v1/firms/{firm.firm_id}"
    calls = [
        ("POST", f"{base}/links", {"account_id": account_id, "customer_id": customer_id}),
        ("DELETE", f"{base}/links/{account_id}", None),
        ("POST", f"{base}/accounts/{account_id}/create-in-quickbooks", None),
        ("POST", f"{base}/customers/{customer_id}/create-in-liscio", None),
    ]
    customers_before = len(await system.admin.customers(firm.realm_id))

    for method, path, body in calls:
        as_staff = await api.request(
            method, path, json=body, headers=bearer(firm.firm_id, "staff", STAFF)
        )
        assert as_staff.status_code == 403, (method, path, as_staff.text)
        as_other = await api.request(method, path, json=body, headers=bearer(other.firm_id))
        assert as_other.status_code == 404, (method, path, as_other.text)
        nobody = "firm-nobody-knows"
        unknown = path.replace(firm.firm_id, nobody)
        as_nobody = await api.request(method, unknown, json=body, headers=bearer(nobody))
        assert as_nobody.status_code == 404
        assert as_other.json()["detail"] == as_nobody.json()["detail"].replace(nobody, firm.firm_id)

    assert await link_of_account(system.pool, firm.firm_id, account_id) is None
    assert len(await system.admin.customers(firm.realm_id)) == customers_before
    assert [c for c in await firm.commands() if c["type"] == "account.create"] == []


async def test_create_in_quickbooks_links_a_prospect_and_a_replay_answers_the_same(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm()
    account_id = await prospect(firm, "Asked For It LLC", phone="512-555-0120")
    await stored(firm, (account_id,))
    path = f"/v1/firms/{firm.firm_id}/accounts/{account_id}/create-in-quickbooks"
    headers = {**bearer(firm.firm_id), "Idempotency-Key": f"create-{account_id}"}

    first = await api.post(path, headers=headers)

    assert first.status_code == 201, first.text
    body = first.json()
    (customer,) = await firm.customers_named("Asked For It LLC")
    assert body["link"]["how"] == "created"
    assert body["link"]["customer_id"] == body["customer"]["id"] == customer["Id"]
    assert body["customer"]["display_name"] == "Asked For It LLC"
    assert body["customer"]["phone"] == "512-555-0120"
    assert customer["PrimaryPhone"]["FreeFormNumber"] == "512-555-0120"
    replay = await api.post(path, headers=headers)
    assert (replay.status_code, replay.json()) == (201, body)
    other_body = await api.post(path, headers=headers, json={"something": "else"})
    assert other_body.status_code == 422
    assert len(await firm.customers_named("Asked For It LLC")) == 1
    assert (await firm.link_of(account_id) or {}).get("how") == "created"
    assert await audit_actors(firm, account_id) == [("link.created", ADMIN)]
    # without the key, asked again: the account is linked now
    assert (await api.post(path, headers=bearer(firm.firm_id))).status_code == 409


async def test_create_in_quickbooks_of_a_name_quickbooks_has_is_409_naming_it(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm()
    existing = await firm.add_customer("Taken By Someone Inc")
    account_id = await prospect(firm, "taken by someone inc")
    await stored(firm, (account_id,))

    answer = await api.post(
        f"/v1/firms/{firm.firm_id}/accounts/{account_id}/create-in-quickbooks",
        headers=bearer(firm.firm_id),
    )

    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert f"QuickBooks customer {existing}" in answer.json()["detail"]
    assert len(await firm.customers_named("Taken By Someone Inc")) == 1
    assert await link_of_account(system.pool, firm.firm_id, account_id) is None


async def test_quickbooks_down_is_503_with_nothing_half_done_and_the_retry_finishes_once(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm()
    account_id = await prospect(firm, "Unlucky Timing Co")
    await stored(firm, (account_id,))
    path = f"/v1/firms/{firm.firm_id}/accounts/{account_id}/create-in-quickbooks"
    headers = {**bearer(firm.firm_id), "Idempotency-Key": f"down-{account_id}"}
    await system.admin.set_faults(firm.realm_id, fault_5xx_rate=1)
    try:
        down = await api.post(path, headers=headers)
    finally:
        await system.admin.set_faults(firm.realm_id, fault_5xx_rate=0)

    assert down.status_code == 503, down.text
    assert int(down.headers["Retry-After"]) > 0
    assert await link_of_account(system.pool, firm.firm_id, account_id) is None
    assert await firm.customers_named("Unlucky Timing Co") == []

    retried = await api.post(path, headers=headers)  # the same key: a 503 is not kept

    assert retried.status_code == 201, retried.text
    (customer,) = await firm.customers_named("Unlucky Timing Co")
    assert retried.json()["link"]["customer_id"] == customer["Id"]
    created = await eventually(
        lambda: _events_of(firm, account_id, "link.created"), timeout=30, what="link.created"
    )
    assert len(created) == 1


async def test_create_in_liscio_links_liscios_answer_and_creates_nothing_in_quickbooks(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm()
    customer_id = await firm.add_customer(
        "Born In QuickBooks LLC", WebAddr={"URI": "https://born.example"}
    )
    await prospect(firm, "Somebody Else")  # the firm exists for the API
    await firm.sync()
    await stored(firm, customers=(customer_id,))
    writes_before = len(await firm.writes())
    path = f"/v1/firms/{firm.firm_id}/customers/{customer_id}/create-in-liscio"

    answer = await api.post(path, headers=bearer(firm.firm_id))

    assert answer.status_code == 202, answer.text
    command_id = answer.json()["command_id"]
    # Liscio (the stand-in) creates the account and answers with the command's id; the
    # pusher links it.
    created = await eventually(
        lambda: _answer_of(firm, command_id), timeout=60, what="Liscio's account.created"
    )
    assert created.account.name == "Born In QuickBooks LLC"
    assert created.account.website == "https://born.example"
    link = await eventually(
        lambda: firm.link_of(created.account.id), timeout=60, what="the answer linked"
    )
    assert (link["customer_id"], link["how"]) == (customer_id, "created")
    assert len(await firm.writes()) == writes_before  # nothing created in QuickBooks
    assert len(await firm.customers_named("Born In QuickBooks LLC")) == 1
    (command,) = [c for c in await firm.commands() if c["type"] == "account.create"]
    assert command["command_id"] == command_id
    assert command["source"] == {"realm_id": firm.realm_id, "customer_id": customer_id}
    assert (await audit_actors(firm, created.account.id))[0] == ("link.created", ADMIN)
    linked_now = await api.post(path, headers=bearer(firm.firm_id))
    assert linked_now.status_code == 409
    unknown = await api.post(
        f"/v1/firms/{firm.firm_id}/customers/99999/create-in-liscio", headers=bearer(firm.firm_id)
    )
    assert unknown.status_code == 404


async def _liscio_create_of(api: httpx.AsyncClient, firm: Firm, customer_id: str) -> Any:
    """The customer's `liscio_create` as the records list it."""
    page = await api.get(
        f"/v1/firms/{firm.firm_id}/records",
        params={"filter": "unlinked_customers"},
        headers=bearer(firm.firm_id, "staff"),
    )
    (item,) = [i for i in page.json()["items"] if i["customer"]["id"] == customer_id]
    return item["liscio_create"]


async def test_a_create_in_liscio_never_answered_may_be_asked_again_and_links_one_account(
    system: System, api: httpx.AsyncClient
) -> None:
    firm = await system.new_firm(liscio_answers=False)  # Liscio is down
    customer_id = await firm.add_customer("Liscio Was Down LLC")
    await prospect(firm, "Somebody Else")  # the firm exists for the API
    await firm.sync()
    await stored(firm, customers=(customer_id,))
    path = f"/v1/firms/{firm.firm_id}/customers/{customer_id}/create-in-liscio"
    first = (await api.post(path, headers=bearer(firm.firm_id))).json()["command_id"]
    assert (await api.post(path, headers=bearer(firm.firm_id))).json()["command_id"] == first
    waiting = await _liscio_create_of(api, firm, customer_id)
    assert (waiting["command_id"], waiting["retryable"]) == (first, False)

    # A day without an answer (QBSYNC_LISCIO_CREATE_EXPIRY_HOURS, 24 by default).
    await system.pool.execute(
        "UPDATE liscio_creates SET created_at = now() - interval '25 hours' WHERE command_id = $1",
        first,
    )
    assert (await _liscio_create_of(api, firm, customer_id))["retryable"] is True
    again = await api.post(path, headers=bearer(firm.firm_id))

    assert again.status_code == 202, again.text
    second = again.json()["command_id"]
    assert second == f"{first}.2"
    waiting = await _liscio_create_of(api, firm, customer_id)
    assert (waiting["command_id"], waiting["retryable"]) == (second, False)
    # Liscio comes back and answers both, the first one late: one account is linked.
    # (Their keys differ, so the second is published once the first was read.)
    late = LiscioAccount("a-late-first", "Liscio Was Down LLC")
    await firm.liscio.publish(late, "account.created", first)
    link = await eventually(
        lambda: firm.link_of("a-late-first"), timeout=60, what="the late answer linked"
    )
    assert (link["customer_id"], link["how"]) == (customer_id, "created")
    duplicate = LiscioAccount("a-second", "Liscio Was Down LLC")
    await firm.liscio.publish(duplicate, "account.created", second)

    async def second_for_attention() -> Any:
        account = await get_account(system.pool, firm.firm_id, "a-second")
        return account is not None and await system.pool.fetchval(
            "SELECT attention FROM accounts WHERE firm_id = $1 AND account_id = $2",
            firm.firm_id,
            "a-second",
        )

    await eventually(second_for_attention, timeout=60, what="the second answer for attention")
    assert await firm.link_of("a-second") is None
    linked = await system.pool.fetchval(
        "SELECT count(*) FROM links WHERE realm_id = $1 AND customer_id = $2",
        firm.realm_id,
        customer_id,
    )
    assert linked == 1


async def _answer_of(firm: Firm, command_id: str) -> Any:
    for event in firm.liscio.published:
        if event.command_id == command_id:
            return event
    return None
