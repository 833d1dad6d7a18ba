"""Sync Now end to end: importer, matcher and the CLI on the real broker, database and
the QuickBooks emulator (issue 4)."""

from __future__ import annotations

import asyncio

from qbsync.demo.liscio import LiscioAccount
from tests.integration.system import System, find
from tests.support.polling import eventually

ADDRESS_QBO = {"Line1": "9 Elm Rd", "City": "Dallas", "CountrySubDivisionCode": "TX"}
ADDRESS_LISCIO = {"line1": "1 Main St", "city": "Austin", "state": "TX"}


async def test_sync_now_links_names_equal_ignoring_case(system: System) -> None:
    firm = await system.new_firm(
        {"name": "ACME Tax LLC"},
        {"name": "beta co"},
        {"name": "Gamma Partners", "Active": False},
        {"name": "Epsilon Advisors."},
    )
    parent = await firm.add_customer("Zeta Holdings")
    await firm.add_customer("Zeta Job", Job=True, ParentRef={"value": parent})
    accounts = {
        "a-acme": "Acme Tax LLC",
        "a-beta": "Beta Co",
        "a-gamma": "Gamma Partners",
        "a-eps": "Epsilon Advisors",
        "a-job": "zeta job",
        "a-none": "Nobody In QuickBooks",
    }
    for account_id, name in accounts.items():
        await firm.liscio.create(LiscioAccount(account_id, name, status="Prospect"))

    report = await firm.sync()

    assert report["status"] == "done", report
    assert {s: report["steps"][s]["status"] for s in ("import", "match", "push")} == {
        "import": "done", "match": "done", "push": "done"}
    assert report["steps"]["import"]["counts"]["customers"] == 6
    assert report["steps"]["match"]["counts"]["linked"] == 2
    links = {link["account_id"]: link for link in (await firm.links())["links"]}
    assert set(links) == {"a-acme", "a-beta"}
    assert {link["how"] for link in links.values()} == {"auto"}
    # Inactive customers are deleted ones; names are compared exactly after casefold; a
    # sub-customer is a job, never linked automatically.
    events = await firm.link_events()
    assert sorted(e["account_id"] for e in find(events, type="link.created")) == ["a-acme", "a-beta"]
