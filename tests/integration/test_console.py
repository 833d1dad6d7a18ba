"""The integration page in a real headless Chromium, on the real stack: the API process
(which serves the page at `/`), the importer, matcher and pusher, Kafka, PostgreSQL and
the QuickBooks emulator. A firm admin does the seed's "Automatic Syncing" and "Manually
Syncing" in the browser; staff see everything and can do nothing; errors are shown where
they happen. Throughout, no console error and no request leaving 127.0.0.1.

Screenshots of every step go to .run/screenshots/ (not committed)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, expect

from qbsync.db.accounts import get_account
from qbsync.demo.liscio import LiscioAccount
from tests.integration.system import Firm, System, free_port
from tests.support.api import JWT_SECRET, bearer, token
from tests.support.browser import Watched, chromium, watched_page
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

ADMIN, STAFF = "u-admin", "u-staff"
# Waits of the browser's assertions: a Sync Now on this loaded 2-core machine takes seconds.
SYNC_TIMEOUT_MS = 90_000
STEP_TIMEOUT_MS = 30_000
# Every other wait: a QuickBooks call through the page takes seconds on a loaded machine.
expect.set_options(timeout=20_000)


@dataclass
class Console:
    system: System
    url: str
    api: httpx.AsyncClient
    browser: Browser


@pytest_asyncio.fixture(scope="module")
async def console(system: System) -> AsyncIterator[Console]:
    port = free_port()
    env = {**system.env, "QBSYNC_API_PORT": str(port), "QBSYNC_API_JWT_SECRET": JWT_SECRET}
    system.processes["api"] = process = ServiceProcess("services.api", env)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=120) as api, chromium() as browser:

        async def ready() -> bool:
            if process.process.poll() is not None:
                raise AssertionError(f"the API exited:\n{process.output()[-3000:]}")
            try:
                return (await api.get("/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=60, what="the API ready")
        yield Console(system, url, api, browser)


async def prospect(firm: Firm, name: str, **fields: Any) -> str:
    """An unlinked account (a Prospect: the pusher creates nothing for it by itself)."""
    account_id = f"a-{uuid.uuid4().hex[:10]}"
    await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect", **fields))
    return account_id


async def stored(firm: Firm, *account_ids: str) -> None:
    async def kept() -> bool:
        for account_id in account_ids:
            if await get_account(firm.system.pool, firm.firm_id, account_id) is None:
                return False
        return True

    await eventually(kept, timeout=60, what="the accounts stored")


async def sign_in(console: Console, page: Page, firm: Firm, role: str = "admin") -> None:
    user = ADMIN if role == "admin" else STAFF
    await page.goto(f"{console.url}/?token={token(firm.firm_id, role, user)}")
    await expect(page.get_by_role("heading", name="QuickBooks integration")).to_be_visible()
    await page.wait_for_url(f"{console.url}/")  # the token left the address bar


@asynccontextmanager
async def signed_in(
    console: Console, firm: Firm, role: str = "admin", width: int = 1280, height: int = 900
) -> AsyncIterator[Watched]:
    """A watched page signed in to the firm's console; on leaving, nothing it did logged a
    console error or asked for anything beyond 127.0.0.1."""
    async with watched_page(console.browser, width=width, height=height) as watched:
        await sign_in(console, watched.page, firm, role)
        yield watched
        watched.assert_clean()


async def shows_suggestions(page: Page, name: str) -> None:
    """The record's Suggestions open under its row, with their scores."""
    await row(page, name).get_by_role("button", name="Suggestions").click()
    await expect(detail_of(page, name)).to_contain_text("% similar")


def row(page: Page, name: str) -> Locator:
    """The record's row: its name as written (has_text alone ignores case, and "ACME LTD"
    is not the row of the customer "Acme Ltd")."""
    return page.locator("tr.record", has_text=re.compile(re.escape(name)))


def detail_of(page: Page, name: str) -> Locator:
    """The region under a record's row where its actions answer."""
    return row(page, name).locator("xpath=following-sibling::tr[1]/td")


async def sync_now(page: Page) -> None:
    await page.get_by_role("button", name="Sync Now", exact=True).click()
    steps = page.locator("#steps")
    for step in ("import", "match", "push"):
        done = steps.locator(f'[data-step="{step}"][data-status="done"]')
        await expect(done).to_be_visible(timeout=SYNC_TIMEOUT_MS)
        # done is a word and a ✓, not a colour alone
        await expect(done.locator(".step-state")).to_have_text("Done")
        await expect(done.locator(".step-mark")).to_have_text("✓")
    await expect(page.get_by_text("Sync completed")).to_be_visible()
    # The records list is read again once the run is done: wait for that list, so that no
    # click lands on a row about to be replaced.
    run_id = await steps.get_attribute("data-run-id")
    assert run_id
    await expect(page.locator(f'#record-list[data-last-run="{run_id}"]')).to_have_count(1)


async def choose_tab(page: Page, label: str) -> None:
    tab = page.get_by_role("tab", name=label)
    await tab.click()
    await expect(page.get_by_role("tab", name=label)).to_have_attribute("aria-selected", "true")


def count_of(page: Page, label: str) -> Locator:
    """The number the page shows under one of its counts."""
    return page.locator(".counts div").filter(has=page.get_by_text(label, exact=True)).locator("dd")


async def a_synced_firm(console: Console) -> tuple[Firm, dict[str, str]]:
    """Acme matches by name; Birch differs by its name (a suggestion); Delta is only in
    Liscio, Cedar only in QuickBooks."""
    firm = await console.system.new_firm()
    ids = {
        "acme_customer": await firm.add_customer("Acme Ltd"),
        "birch_customer": await firm.add_customer(
            "Birch & Sons Consulting",
            WebAddr={"URI": "https://birch.example"},
            GivenName="Beth",
            FamilyName="Birch",
        ),
        "cedar_customer": await firm.add_customer("Cedar Holdings"),
        "acme": await prospect(firm, "ACME LTD", phone="512-555-0100"),
        "birch": await prospect(
            firm,
            "Birch and Sons",
            phone="512-555-0101",
            contacts=[{"id": "c-beth", "first_name": "Beth", "last_name": "Birch"}],
        ),
        "delta": await prospect(firm, "Delta Partners"),
    }
    await stored(firm, ids["acme"], ids["birch"], ids["delta"])
    return firm, ids


async def test_an_admin_syncs_then_searches_links_delinks_and_creates_in_the_browser(
    console: Console,
) -> None:
    firm, ids = await a_synced_firm(console)
    async with signed_in(console, firm) as watched:
        page = watched.page
        await watched.shot("01-admin-before-sync")

        # Automatic syncing: Sync Now, the three steps turn done, Acme is linked by name.
        await sync_now(page)
        await expect(row(page, "ACME LTD")).to_contain_text("Linked")
        await expect(count_of(page, "Linked")).to_have_text("1")
        await expect(count_of(page, "Unmatched in Liscio")).to_have_text("2")
        await expect(count_of(page, "Unmatched in QuickBooks")).to_have_text("2")
        await watched.shot("02-admin-synced")

        # Manually syncing: the search box narrows the list as one types.
        await page.get_by_label("Search by name").press_sequentially("birch", delay=30)
        await expect(page.locator("tr.record")).to_have_count(2)
        await expect(row(page, "ACME LTD")).to_have_count(0)
        await watched.shot("03-admin-search")

        # The account's suggestions, with scores; link the suggested customer.
        await row(page, "Birch and Sons").get_by_role("button", name="Suggestions").click()
        detail = detail_of(page, "Birch and Sons")
        suggestion = detail.locator("li.candidate", has_text="Birch & Sons Consulting")
        await expect(suggestion.locator(".score")).to_contain_text("% similar")
        await suggestion.get_by_role("button", name="Link to Birch & Sons Consulting").click()
        # The first sync's values: Liscio's phone written to QuickBooks, QuickBooks' website
        # to Liscio, each in the pair's audit trail with the admin who linked.
        await expect(detail.locator(".badge.ok", has_text="Linked")).to_be_visible()
        trail = detail.locator("table.audit")
        await expect(trail.locator("tr", has_text="phone")).to_contain_text("→ 512-555-0101")
        await expect(trail.locator("tr", has_text="website")).to_contain_text(
            "→ https://birch.example"
        )
        linked_row = trail.locator("tr").filter(has=page.get_by_text("Linked", exact=True))
        await expect(linked_row).to_contain_text(ADMIN)
        quickbooks_phone = detail.locator('td[data-field="phone"][data-side="quickbooks"]')
        await expect(quickbooks_phone).to_have_text("512-555-0101")
        customer = await firm.customer(ids["birch_customer"])
        assert customer["PrimaryPhone"]["FreeFormNumber"] == "512-555-0101"
        await expect(count_of(page, "Linked")).to_have_text("2")
        await watched.shot("04-admin-linked")

        # The linked account's invoices: a new one for a contact, then the search.
        await expect(detail.locator(".invoices-list")).to_contain_text("No invoices")
        form = detail.locator("form.new-invoice")
        await form.get_by_label("Contact").select_option(label="Beth Birch")
        await form.get_by_label("Description").fill("2026 tax return")
        await form.get_by_label("Amount").fill("450")
        await form.get_by_role("button", name="Create invoice").click()
        invoices = detail.locator(".invoices-list")
        await expect(invoices.get_by_role("status")).to_contain_text("created for Beth Birch")
        made = invoices.locator("tr[data-invoice-id]")
        await expect(made).to_have_count(1)
        await expect(made).to_contain_text("450.00")
        await expect(made).to_contain_text("Beth Birch")
        made_in_quickbooks = await console.system.admin.invoices(firm.realm_id)
        assert [i["CustomerRef"]["value"] for i in made_in_quickbooks] == [ids["birch_customer"]]
        await watched.shot("05-admin-invoice")
        search_invoices = detail.get_by_label("Search invoices")
        await search_invoices.press_sequentially("zzz", delay=30)
        await expect(invoices).to_contain_text("No invoices with “zzz”")
        await search_invoices.fill("tax")
        await expect(invoices.locator("tr[data-invoice-id]")).to_have_count(1)

        # Delink it again: both records stay, listed as unmatched.
        await page.get_by_label("Search by name").fill("")
        await expect(row(page, "ACME LTD")).to_be_visible()
        await choose_tab(page, "Linked")
        await (
            row(page, "Birch and Sons").get_by_role("button", name="Delink Birch and Sons").click()
        )
        await expect(detail_of(page, "Birch and Sons")).to_contain_text("Delinked Birch")
        await expect(count_of(page, "Linked")).to_have_text("1")
        await watched.shot("06-admin-delinked")
        events = await firm.link_events()
        assert [e["type"] for e in events if e["account_id"] == ids["birch"]][-1:] == [
            "link.removed"
        ]

        # Create in QuickBooks the account QuickBooks does not have.
        await choose_tab(page, "Unmatched in Liscio")
        await (
            row(page, "Delta Partners")
            .get_by_role("button", name="Create Delta Partners in QuickBooks")
            .click()
        )
        await expect(detail_of(page, "Delta Partners")).to_contain_text("Linked")
        assert len(await firm.customers_named("Delta Partners")) == 1
        await watched.shot("07-admin-created-in-quickbooks")

        # The magnifying glass: search the other side, and link from what it finds.
        await choose_tab(page, "Unmatched in QuickBooks")
        await (
            row(page, "Cedar Holdings")
            .get_by_role("button", name="Search Liscio for a record to link to Cedar Holdings")
            .click()
        )
        search = detail_of(page, "Cedar Holdings").get_by_label(
            "Search Liscio for a record to link"
        )
        await search.press_sequentially("birch", delay=30)
        found = detail_of(page, "Cedar Holdings").locator("li.candidate")
        await expect(found).to_have_count(1)
        await expect(found).to_contain_text("Birch and Sons")
        await watched.shot("08-admin-search-other-side")

        # Create in Liscio: Liscio is asked, and its new account is linked to the customer.
        await (
            row(page, "Cedar Holdings")
            .get_by_role("button", name="Create Cedar Holdings in Liscio")
            .click()
        )
        await expect(detail_of(page, "Cedar Holdings")).to_contain_text(
            "Liscio was asked to create an account for Cedar Holdings"
        )

        async def cedar_linked() -> bool:
            links = (await firm.links())["links"]
            return any(link["customer_id"] == ids["cedar_customer"] for link in links)

        await eventually(cedar_linked, timeout=60, what="Liscio's new account linked")
        await page.reload()
        await expect(row(page, "Cedar Holdings")).to_contain_text("Linked")
        await watched.shot("09-admin-created-in-liscio")

        # The lag panel shows the services' consumer groups.
        await expect(page.locator("#lag tr[data-group]").first).to_be_visible(
            timeout=STEP_TIMEOUT_MS
        )


async def test_errors_are_shown_where_they_happen_in_words_a_firm_admin_understands(
    console: Console,
) -> None:
    firm, ids = await a_synced_firm(console)
    async with signed_in(console, firm) as watched:
        page = watched.page
        await sync_now(page)

        # Another admin links the pair while this page shows it as a suggestion: 409.
        await row(page, "Birch and Sons").get_by_role("button", name="Suggestions").click()
        detail = detail_of(page, "Birch and Sons")
        link = detail.get_by_role("button", name="Link to Birch & Sons Consulting")
        await expect(link).to_be_visible()
        elsewhere = await console.api.post(
            f"/v1/firms/{firm.firm_id}/links",
            json={"account_id": ids["birch"], "customer_id": ids["birch_customer"]},
            headers=bearer(firm.firm_id),
        )
        assert elsewhere.status_code == 201, elsewhere.text
        await link.click()
        alert = detail.get_by_role("alert")
        await expect(alert).to_contain_text("already linked")
        await expect(alert).to_contain_text("Delink it first")
        await watched.shot("10-error-already-linked")

        # QuickBooks down: Create in QuickBooks says so, and nothing is created.
        await console.system.admin.set_faults(firm.realm_id, fault_5xx_rate=1)
        try:
            await (
                row(page, "Delta Partners")
                .get_by_role("button", name="Create Delta Partners in QuickBooks")
                .click()
            )
            alert = detail_of(page, "Delta Partners").get_by_role("alert")
            await expect(alert).to_contain_text(
                "QuickBooks is unavailable right now", timeout=SYNC_TIMEOUT_MS
            )
        finally:
            await console.system.admin.set_faults(firm.realm_id, fault_5xx_rate=0)
        assert await firm.customers_named("Delta Partners") == []
        await watched.shot("11-error-quickbooks-unavailable")
        # (signed_in checks the page logged no error: a refusal is content, not a failure)


async def test_a_dry_run_shows_what_sync_now_would_change_before_anything_does(
    console: Console,
) -> None:
    firm, ids = await a_synced_firm(console)
    async with signed_in(console, firm) as watched:
        page = watched.page
        await sync_now(page)
        # A customer added in QuickBooks reaches the stored copy (webhook / CDC) ...
        await firm.add_customer("Delta Partners", PrimaryPhone={"FreeFormNumber": "214-555-0199"})
        headers = bearer(firm.firm_id)

        async def proposed() -> bool:
            plan = await console.api.post(
                f"/v1/firms/{firm.firm_id}/syncs", params={"dry_run": "true"}, headers=headers
            )
            return any(link["account_id"] == ids["delta"] for link in plan.json()["links"])

        await eventually(proposed, timeout=60, what="the new customer in the stored copy")
        # ... and the preview names the link and the first sync's writes; nothing changes.
        await page.get_by_role("button", name="Preview Sync Now").focus()
        await page.keyboard.press("Enter")  # the keyboard does what the mouse does
        preview = page.get_by_role("region", name="What Sync Now would change")
        await expect(preview).to_contain_text("Delta Partners ↔ Delta Partners")
        await expect(preview).to_contain_text("nothing has been changed")
        await watched.shot("12-admin-dry-run")
        await expect(count_of(page, "Linked")).to_have_text("1")


async def test_staff_see_everything_and_no_action(console: Console) -> None:
    firm, _ = await a_synced_firm(console)
    await firm.sync()
    async with signed_in(console, firm, role="staff") as watched:
        page = watched.page
        await expect(page.get_by_text("staff: read only")).to_be_visible()
        await expect(row(page, "ACME LTD")).to_contain_text("Linked")
        await expect(page.locator("#steps")).to_contain_text("Sync completed")
        await shows_suggestions(page, "Birch and Sons")
        await row(page, "ACME LTD").get_by_role("button", name="Details of ACME LTD").click()
        await expect(detail_of(page, "ACME LTD").locator("table.audit")).to_be_visible()
        actions = re.compile(r"^(Sync Now|Preview Sync Now|Link to |Delink |Create )")
        await expect(page.get_by_role("button", name=actions)).to_have_count(0)
        # (the buttons that only show things are there: staff may look at everything)
        suggestions = page.get_by_role("button", name="Suggestions for Delta Partners")
        await expect(suggestions).to_be_visible()
        await expect(page.locator("form.new-invoice")).to_have_count(0)
        await watched.shot("13-staff")

        # A write sent anyway, with the page's CSRF token, is refused by the API's rule.
        csrf = await page.locator("body").get_attribute("hx-headers")
        assert csrf is not None
        forced = await page.request.post(
            f"{console.url}/console/syncs", headers={"X-CSRF-Token": _csrf_of(csrf)}
        )
        assert forced.status == 403
        assert "Only a firm admin can do this." in await forced.text()


async def test_the_session_is_an_httponly_strict_cookie_and_every_write_needs_the_csrf_token(
    console: Console,
) -> None:
    firm, _ = await a_synced_firm(console)
    async with signed_in(console, firm) as watched:
        page = watched.page
        assert "token" not in page.url
        cookies = await page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            ("qbsync_session", True, "Strict")
        ]
        # The session cookie alone does not make a write: no token, or a wrong one, 403.
        for headers in ({}, {"X-CSRF-Token": "0" * 64}):
            refused = await page.request.post(f"{console.url}/console/syncs", headers=headers)
            assert refused.status == 403
        # Nor does the right token sent from another site's page.
        csrf = _csrf_of(await page.locator("body").get_attribute("hx-headers") or "")
        foreign = await page.request.post(
            f"{console.url}/console/syncs",
            headers={"X-CSRF-Token": csrf, "Origin": "http://127.0.0.2:1"},
        )
        assert foreign.status == 403
        # Nothing was started by any of them.
        assert "No sync has run yet" in await page.locator("#steps").inner_text()
        # Signed out, the page asks for a token again.
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{console.url}/")
        await expect(page.get_by_text("You are not signed in")).to_be_visible()


async def test_the_page_is_legible_on_a_phone(console: Console) -> None:
    firm, _ = await a_synced_firm(console)
    await firm.sync()
    async with signed_in(console, firm, width=390, height=844) as watched:
        page = watched.page
        await expect(row(page, "ACME LTD")).to_contain_text("Linked")
        await shows_suggestions(page, "Birch and Sons")
        # Nothing wider than the screen: no sideways scrolling.
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        await watched.shot("14-phone")


def _csrf_of(hx_headers: str) -> str:
    return str(json.loads(hx_headers)["X-CSRF-Token"])
