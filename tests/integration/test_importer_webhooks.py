"""The importer's webhook endpoint with the real importer process, Kafka and PostgreSQL,
the emulator sending CloudEvents (issue 15). CDC polling is set to an hour, so every read
after the start-up round is one a notification caused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from qbsync.db.pool import Pool
from qbsync.kafka.producer import Producer
from qbsync.quickbooks.webhooks import sign
from tests.integration.system import VERIFIER, Firm, System, running_system
from tests.support.kafka import read_topic
from tests.support.polling import eventually
from tests.support.stack import Stack


@pytest_asyncio.fixture(scope="module")
async def importer(
    pool: Pool, producer: Producer, stack: Stack, topics: str, service_env: dict[str, str]
) -> AsyncIterator[System]:
    env = {**service_env, "QBSYNC_CDC_INTERVAL_SECONDS": "3600"}
    async with running_system(
        pool, producer, stack.kafka_bootstrap, topics, env, services=("services.importer",)
    ) as running:
        yield running


async def webhook_url(system: System) -> str:
    settings = await system.admin.webhook()
    return str(settings["url"])


async def importer_counter(system: System, name: str, **labels: str) -> float:
    metrics_url = (await webhook_url(system)).replace("/webhooks/quickbooks", "/metrics")
    async with httpx.AsyncClient() as http:
        text = (await http.get(metrics_url)).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def cloud_event(realm_id: str, customer_id: str, kind: str = "updated") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"test-{realm_id}-{customer_id}",
        "source": "intuit.test",
        "type": f"qbo.customer.{kind}.v1",
        "datacontenttype": "application/json",
        "time": "2026-12-06T12:00:00.000Z",
        "intuitentityid": customer_id,
        "intuitaccountid": realm_id,
        "data": {},
    }


async def post(system: System, body: bytes, signature: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            await webhook_url(system),
            content=body,
            headers={"intuit-signature": signature, "Content-Type": "application/json"},
        )


async def notices_of(system: System, realm_id: str) -> list[dict[str, Any]]:
    found = await read_topic(
        system.bootstrap, system.prefix + "qbo.changes", expect=10**6, timeout=2
    )
    return [value for key, value in found if key == realm_id]


async def cdc_reads(system: System, firm: Firm) -> int:
    log = await system.admin.requests(firm.realm_id)
    return sum(1 for entry in log if entry["path"].endswith("/cdc"))


async def published(system: System, firm: Firm) -> dict[str, dict[str, Any]]:
    """The latest qbo.customers record of each of the firm's customers."""
    found = await read_topic(
        system.bootstrap, system.prefix + "qbo.customers", expect=10**6, timeout=2
    )
    return {
        value["customer_id"]: value for key, value in found if key.startswith(f"{firm.realm_id}:")
    }


async def test_a_bad_signature_gets_401_is_counted_and_nothing_is_processed(
    importer: System,
) -> None:
    firm = await importer.new_firm()  # no customers: the emulator sends it nothing
    before = await importer_counter(
        importer, "qbsync_webhooks_rejected_total", reason="bad_signature"
    )
    body = json.dumps([cloud_event(firm.realm_id, "1")]).encode()

    forged = await post(importer, body, sign("not-the-verifier", body))
    tampered = await post(importer, body + b" ", sign(VERIFIER, body))

    assert (forged.status_code, tampered.status_code) == (401, 401)
    after = await importer_counter(
        importer, "qbsync_webhooks_rejected_total", reason="bad_signature"
    )
    assert after == before + 2
    assert await notices_of(importer, firm.realm_id) == []


async def test_a_burst_of_100_changes_costs_at_most_a_read_per_ten(importer: System) -> None:
    firm = await importer.new_firm()
    ids = [await firm.add_customer(f"Burst Customer {n:03d}") for n in range(100)]

    async def all_created() -> bool:
        return set(await published(importer, firm)) == set(ids)

    await eventually(all_created, timeout=90, interval=1, what="the creates in qbo.customers")
    await importer.admin.clear_requests(firm.realm_id)
    phones = {customer_id: f"512-555-{n:04d}" for n, customer_id in enumerate(ids)}
    for customer_id, phone in phones.items():
        await importer.admin.edit_customer_as_user(
            firm.realm_id, customer_id, {"PrimaryPhone": {"FreeFormNumber": phone}}
        )

    async def all_edited() -> bool:
        latest = await published(importer, firm)
        return all(
            latest[customer_id].get("phone") == phone for customer_id, phone in phones.items()
        )

    await eventually(all_edited, timeout=90, interval=1, what="every edit in qbo.customers")
    assert len(await notices_of(importer, firm.realm_id)) >= 200  # the webhooks did come
    assert await cdc_reads(importer, firm) <= 10


async def test_notices_of_unknown_realms_and_unsynced_entities_are_ignored(
    importer: System,
) -> None:
    ignored = "qbsync_webhook_changes_ignored_total"
    unknown_before = await importer_counter(importer, ignored, reason="unknown_realm")
    entity_before = await importer_counter(importer, ignored, reason="entity")
    invoice = {**cloud_event("4620", "130"), "type": "qbo.invoice.created.v1"}
    body = json.dumps([cloud_event("realm-nobody-knows", "7"), invoice]).encode()

    answer = await post(importer, body, sign(VERIFIER, body))

    assert answer.status_code == 200 and answer.json() == {"accepted": 1}

    async def counted() -> bool:
        unknown = await importer_counter(importer, ignored, reason="unknown_realm")
        return unknown == unknown_before + 1

    await eventually(counted, timeout=30, what="the unknown realm counted")
    assert await importer_counter(importer, ignored, reason="entity") == entity_before + 1
    assert await importer.admin.requests("realm-nobody-knows") == []
