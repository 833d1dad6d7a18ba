"""The emulator's test-only admin API and its command line."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import httpx
import pytest

from qbsync.emulator import EmulatorAdminError, RunningEmulator
from tests.support.qbo import qbo_client
from tests.support.stack import REPO


async def test_bulk_seeding_makes_100k_customers_queryable(emulator: RunningEmulator) -> None:
    # How fast seeding is belongs to the benchmarks (bench-sync seeds this way), not here.
    seeded = await emulator.admin.bulk_customers(emulator.realm_id, 100_000, inactive_every=10)
    assert seeded["created"] == 100_000
    assert (seeded["first_id"], seeded["last_id"]) == ("31", "100030")
    async with qbo_client(emulator) as qbo:
        counted = await qbo.query("select count(*) from Customer")
        assert counted.json()["QueryResponse"]["totalCount"] == 27 + 90_000
        last_page = await qbo.query_rows(
            "select * from Customer where Active in (true, false)"
            " STARTPOSITION 100001 MAXRESULTS 1000"
        )
        assert [row["Id"] for row in last_page] == [str(n) for n in range(100001, 100031)]
        bulk = await qbo.get("customer/100030")
        assert bulk.json()["Customer"]["DisplayName"] == "Bulk Customer 0100030"
        assert bulk.json()["Customer"]["Active"] is False  # every 10th is inactive


async def test_user_edits_need_no_sync_token_and_bump_it(emulator: RunningEmulator) -> None:
    realm = emulator.realm_id
    before = await emulator.admin.customer(realm, "1")
    assert before is not None and "WebAddr" not in before
    edited = await emulator.admin.edit_customer_as_user(
        realm, "1", {"WebAddr": {"URI": "https://birds.example"}, "PrimaryPhone": None}
    )
    assert edited["SyncToken"] == str(int(before["SyncToken"]) + 1)
    assert edited["WebAddr"] == {"URI": "https://birds.example"}
    assert "PrimaryPhone" not in edited
    async with qbo_client(emulator) as qbo:
        stale = await qbo.post(
            "customer",
            {"Id": "1", "SyncToken": before["SyncToken"], "sparse": True, "Notes": "late"},
        )
        assert stale.json()["Fault"]["Error"][0]["code"] == "5010"
    with pytest.raises(EmulatorAdminError) as unknown_field:
        await emulator.admin.edit_customer_as_user(realm, "1", {"Balance": 5})
    assert unknown_field.value.status == 400
    created = await emulator.admin.create_customer_as_user(realm, {"DisplayName": "By Hand"})
    assert created["SyncToken"] == "0"


async def test_merge_removes_the_merged_customer(emulator: RunningEmulator) -> None:
    realm = emulator.realm_id
    survivor = await emulator.admin.merge_customers(realm, "4", "3")
    assert survivor["Id"] == "3"
    assert (await emulator.admin.customer(realm, "4") or {}).get("status") == "Deleted"
    async with qbo_client(emulator) as qbo:
        assert (await qbo.get("customer/4")).json()["Fault"]["Error"][0]["code"] == "610"
        rows = await qbo.query_rows("select * from Customer where Active in (true, false)")
        assert "4" not in [row["Id"] for row in rows]
        # The merged-away name is free again.
        assert (await qbo.post("customer", {"DisplayName": "Diego Rodriguez"})).status_code == 200


async def test_realms_are_created_reset_and_independent(emulator: RunningEmulator) -> None:
    empty = await emulator.admin.create_realm(contents="empty")
    assert empty["customers"] == 0 and empty["items"] == 0
    named = await emulator.admin.create_realm("123145678", contents="sandbox")
    assert named["realm_id"] == "123145678" and named["customers"] == 30
    async with qbo_client(emulator, "123145678", named["refresh_token"]) as qbo:
        await qbo.create_customer({"DisplayName": "Only Here"})
        assert (await emulator.admin.realm("123145678"))["customers"] == 31
    assert (await emulator.admin.realm(emulator.realm_id))["customers"] == 30
    reset = await emulator.admin.reset_realm("123145678", contents="sandbox")
    assert reset["customers"] == 30
    with pytest.raises(EmulatorAdminError) as missing:
        await emulator.admin.realm("does-not-exist")
    assert missing.value.status == 404
    with pytest.raises(EmulatorAdminError):
        await emulator.admin.create_realm(contents="sparkly")


async def test_limits_and_faults_can_be_changed_while_running(emulator: RunningEmulator) -> None:
    realm = emulator.realm_id
    limits = await emulator.admin.set_limits(realm, max_in_flight=3, window_seconds=6)
    assert (limits["max_in_flight"], limits["window_seconds"]) == (3, 6)
    faults = await emulator.admin.set_faults(realm, latency_ms=80, jitter_ms=5)
    assert (faults["latency_ms"], faults["jitter_ms"]) == (80.0, 5.0)
    for bad in ({"max_in_flight": 0}, {"speed": 1}):
        with pytest.raises(EmulatorAdminError):
            await emulator.admin.set_limits(realm, **bad)
    with pytest.raises(EmulatorAdminError):
        await emulator.admin.set_faults(realm, fault_5xx_rate=2)


async def test_the_command_line_runs_the_emulator_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qbsync.cli",
        "emulator",
        "--port",
        "0",
        "--realm",
        "4620816365",
        "--refresh-token",
        "cli-refresh-token",
        "--client-id",
        "cli-client",
        "--client-secret",
        "cli-secret",
        "--max-requests",
        "5",
        "--rate-window",
        "6",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert ready["realm_id"] == "4620816365"
        assert ready["refresh_token"] == "cli-refresh-token"
        async with httpx.AsyncClient() as http:
            grant = await http.post(
                ready["token_url"],
                data={"grant_type": "refresh_token", "refresh_token": "cli-refresh-token"},
                auth=("cli-client", "cli-secret"),
            )
            assert grant.status_code == 200
            headers = {"Authorization": f"Bearer {grant.json()['access_token']}"}
            url = f"{ready['base_url']}/v3/company/4620816365/customer/1"
            statuses = [(await http.get(url, headers=headers)).status_code for _ in range(6)]
            assert statuses == [200] * 5 + [429]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
