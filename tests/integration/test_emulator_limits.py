"""The emulator's throttles (429 with Retry-After), latency and injected faults, over HTTP."""

from __future__ import annotations

import asyncio
import time

import httpx

from qbsync.emulator import EmulatorConfig, RunningEmulator, running_emulator
from tests.support.polling import eventually
from tests.support.qbo import QboTestClient, qbo_client


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["Fault"]["type"] == "SERVICE"
    error = body["Fault"]["Error"][0]
    assert error["code"] == "3001"
    assert error["Message"] == "message=ThrottleExceeded; errorCode=003001; statusCode=429"


async def test_more_than_ten_in_flight_get_429(emulator: RunningEmulator) -> None:
    await emulator.admin.set_faults(emulator.realm_id, latency_ms=800)
    async with qbo_client(emulator) as qbo:
        responses = await asyncio.gather(*(qbo.get("customer/1") for _ in range(15)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 10 + [429] * 5
    for response in responses:
        if response.status_code == 429:
            assert_throttled(response)
    limits = await emulator.admin.limits(emulator.realm_id)
    assert limits["peak_in_flight"] == 10 and limits["throttled_total"] == 5
    log = await emulator.admin.requests(emulator.realm_id)
    admitted = [entry for entry in log if entry["status"] == 200]
    assert max(entry["in_flight_at_arrival"] for entry in admitted) <= 9


async def test_more_than_the_window_quota_gets_429_until_the_window_moves() -> None:
    config = EmulatorConfig(max_requests_per_window=20, rate_window_seconds=4.0)
    async with running_emulator(config) as emulator, qbo_client(emulator) as qbo:
        statuses = [(await qbo.get("customer/1")).status_code for _ in range(20)]
        assert statuses == [200] * 20
        refused = await qbo.get("customer/1")
        assert_throttled(refused)
        assert 1 <= int(refused.headers["Retry-After"]) <= 4

        async def admitted() -> bool:
            return (await qbo.get("customer/1")).status_code == 200

        started = time.monotonic()
        await eventually(admitted, timeout=8, interval=0.1, what="the window to move on")
        assert time.monotonic() - started < 4.5
        limits = await emulator.admin.limits(emulator.realm_id)
        assert limits["max_requests_per_window"] == 20 and limits["window_seconds"] == 4.0


async def test_batch_items_count_against_the_window(emulator: RunningEmulator) -> None:
    await emulator.admin.set_limits(
        emulator.realm_id, max_requests_per_window=10, window_seconds=30
    )

    def batch(size: int) -> dict[str, object]:
        return {
            "BatchItemRequest": [
                {"bId": str(n), "Query": "select * from Item"} for n in range(size)
            ]
        }

    async with qbo_client(emulator) as qbo:
        assert (await qbo.post("batch", batch(8))).status_code == 200
        assert_throttled(await qbo.post("batch", batch(3)))
        assert (await qbo.post("batch", batch(2))).status_code == 200
        assert_throttled(await qbo.get("customer/1"))
    log = await emulator.admin.requests(emulator.realm_id)
    assert [(entry["cost"], entry["status"]) for entry in log] == [
        (8, 200),
        (3, 429),
        (2, 200),
        (1, 429),
    ]


async def test_latency_and_jitter_apply_to_every_request(emulator: RunningEmulator) -> None:
    await emulator.admin.set_faults(emulator.realm_id, latency_ms=120, jitter_ms=30)
    async with qbo_client(emulator) as qbo:
        for _ in range(3):
            started = time.perf_counter()
            assert (await qbo.get("customer/1")).status_code == 200
            assert 0.12 <= time.perf_counter() - started < 2.0


async def test_slow_responses(emulator: RunningEmulator) -> None:
    await emulator.admin.set_faults(emulator.realm_id, slow_rate=1, slow_ms=400)
    async with qbo_client(emulator) as qbo:
        started = time.perf_counter()
        assert (await qbo.get("customer/1")).status_code == 200
        assert time.perf_counter() - started >= 0.4


async def test_injected_5xx_answers_without_applying_the_write(emulator: RunningEmulator) -> None:
    await emulator.admin.set_faults(emulator.realm_id, fault_5xx_rate=1)
    async with qbo_client(emulator) as qbo:
        response = await qbo.post("customer", {"DisplayName": "Never Written"}, requestid="w1")
        assert response.status_code == 500
        assert response.json()["Fault"]["type"] == "SystemFault"
        assert response.json()["Fault"]["Error"][0]["code"] == "10000"
        await emulator.admin.set_faults(emulator.realm_id, fault_5xx_rate=0)
        assert (
            await qbo.query_rows("select * from Customer where DisplayName = 'Never Written'") == []
        )
        retried = await qbo.post("customer", {"DisplayName": "Never Written"}, requestid="w1")
        assert retried.status_code == 200


async def test_dropped_connection_after_the_write_then_retry_with_requestid(
    emulator: RunningEmulator,
) -> None:
    await emulator.admin.set_faults(emulator.realm_id, drop_rate=1)
    async with qbo_client(emulator) as qbo:
        body = {"DisplayName": "Written Once"}
        try:
            await qbo.post("customer", body, requestid="drop-1")
            raise AssertionError("the connection should have been dropped")
        except httpx.TransportError:
            pass
        stored = [
            row
            for row in await emulator.admin.customers(emulator.realm_id)
            if row["DisplayName"] == "Written Once"
        ]
        assert len(stored) == 1  # the write happened although no answer came back

        retried = await qbo.post("customer", body, requestid="drop-1")
        assert retried.status_code == 200
        assert retried.json()["Customer"]["Id"] == stored[0]["Id"]

        await emulator.admin.set_faults(emulator.realm_id, drop_rate=0)
        reads = await qbo.get("customer/1")
        assert reads.status_code == 200
    log = await emulator.admin.requests(emulator.realm_id)
    assert [(entry["dropped"], entry["request_id"]) for entry in log[:2]] == [
        (True, "drop-1"),
        (False, "drop-1"),
    ]
    assert log[1]["operation"] == "customer.write (replayed)"


async def test_a_retry_overtaking_the_first_attempt_waits_for_it(
    emulator: RunningEmulator,
) -> None:
    await emulator.admin.set_faults(emulator.realm_id, latency_ms=300)
    async with qbo_client(emulator) as qbo:
        body = {"DisplayName": "Raced Once"}
        first, second = await asyncio.gather(
            qbo.post("customer", body, requestid="race"),
            qbo.post("customer", body, requestid="race"),
        )
        assert first.status_code == second.status_code == 200
        assert first.content == second.content
    assert (
        sum(
            row["DisplayName"] == "Raced Once"
            for row in await emulator.admin.customers(emulator.realm_id)
        )
        == 1
    )


async def test_request_log_records_each_request_and_can_be_cleared(
    emulator: RunningEmulator,
) -> None:
    async with qbo_client(emulator) as qbo:
        await qbo.get("customer/1")
        await qbo.post("customer", {"DisplayName": "Logged"}, requestid="log-1")
        await qbo.query("select * from Item")
    log = await emulator.admin.requests()
    assert [(e["method"], e["operation"], e["status"]) for e in log] == [
        ("GET", "customer.read", 200),
        ("POST", "customer.write", 200),
        ("GET", "query", 200),
    ]
    entry = log[1]
    assert entry["realm_id"] == emulator.realm_id and entry["request_id"] == "log-1"
    assert entry["path"] == f"/v3/company/{emulator.realm_id}/customer"
    assert entry["finished_at"] >= entry["started_at"]
    later = await emulator.admin.requests(since_seq=log[1]["seq"])
    assert [e["operation"] for e in later] == ["query"]
    await emulator.admin.clear_requests()
    assert await emulator.admin.requests() == []


async def test_fifty_polite_coroutines_never_exceed_ten_in_flight(
    emulator: RunningEmulator,
) -> None:
    """A client that keeps itself to ten at a time is never throttled."""
    await emulator.admin.set_faults(emulator.realm_id, latency_ms=50, jitter_ms=20)
    gate = asyncio.Semaphore(10)

    async with qbo_client(emulator) as qbo:

        async def one(client: QboTestClient) -> int:
            async with gate:
                return (await client.get("customer/1")).status_code

        statuses = await asyncio.gather(*(one(qbo) for _ in range(50)))
    assert statuses == [200] * 50
    limits = await emulator.admin.limits(emulator.realm_id)
    assert limits["throttled_total"] == 0 and limits["peak_in_flight"] <= 10
