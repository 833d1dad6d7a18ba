"""One trace across services (issue 17, tracing).

The test process is the producer: its spans go to an in-memory exporter, and the messages
it sends carry their context in a `traceparent` header. The importer, the matcher and the
pusher run as processes, as in production, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at an
OTLP/HTTP receiver in the test (tests/support/otlp.py), so what they export is real OTLP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qbsync import tracing
from qbsync.db.pool import Pool
from qbsync.demo.liscio import LiscioAccount
from qbsync.kafka.producer import Producer
from qbsync.kafka.topics import SYNC_REQUESTS
from schemas import SyncRequest
from tests.conftest import unique
from tests.integration.system import System, running_system
from tests.integration.test_pusher import wait_link
from tests.support.kafka import read_headers
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.polling import eventually
from tests.support.stack import Stack
from tests.support.traces import hex_ids, recording_spans


@pytest_asyncio.fixture(scope="module")
async def traced(
    pool: Pool, producer: Producer, stack: Stack, topics: str, service_env: dict[str, str]
) -> AsyncIterator[tuple[System, OtlpReceiver]]:
    receiver = OtlpReceiver()
    endpoint = await receiver.start()
    # Spans leave each process a tenth of a second after they end (the default is 5 s).
    env = {**service_env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        async with running_system(pool, producer, stack.kafka_bootstrap, topics, env) as system:
            yield system, receiver
    finally:
        await receiver.stop()


@pytest.fixture
def memory_spans() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exporter:
        yield exporter


def named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


async def test_a_liscio_event_is_one_trace_from_its_producer_to_the_quickbooks_call(
    traced: tuple[System, OtlpReceiver], memory_spans: InMemorySpanExporter
) -> None:
    system, receiver = traced
    firm = await system.new_firm()
    with tracing.span("liscio publishes") as published:
        await firm.liscio.create(LiscioAccount("a-traced", "Traced Books LLC"))
    trace_id, published_id = hex_ids(published)
    await wait_link(firm, "a-traced")

    async def quickbooks_create() -> list[ReceivedSpan]:
        return named(receiver.of_trace(trace_id), "quickbooks create_customer")

    (create,) = await eventually(quickbooks_create, what="the create's span")
    spans = {span.span_id: span for span in receiver.of_trace(trace_id)}
    applied = spans[create.parent_id or ""]
    assert (applied.name, applied.service) == ("pusher apply", "qbsync-pusher")
    assert applied.parent_id == published_id  # the producer's span, in the test process
    assert create.service == "qbsync-pusher"
    assert create.attributes == {
        "qbsync.realm_id": firm.realm_id,
        "qbsync.quickbooks.operation": "create_customer",
        "http.request.method": "POST",
    }
    # A new name is created first, with no lookup (a lookup follows only a 6240).
    assert named(list(spans.values()), "quickbooks find_customers") == []
    assert [s.name for s in memory_spans.get_finished_spans()] == ["liscio publishes"]

    # The link event, written through the outbox, carries the apply's context on to Liscio.
    async def link_event_headers() -> list[dict[str, bytes]]:
        return await read_headers(system.bootstrap, system.prefix + "sync.links", firm.firm_id)

    (headers,) = await eventually(link_event_headers, what="the link event")
    assert headers["traceparent"].decode().split("-")[1:3] == [trace_id, applied.span_id]


async def test_a_sync_now_is_one_trace_through_import_match_and_push(
    traced: tuple[System, OtlpReceiver], memory_spans: InMemorySpanExporter
) -> None:
    system, receiver = traced
    firm = await system.new_firm({"name": "Traced Tax LLC"}, {"name": "Untraced Co"})
    await firm.liscio.create(LiscioAccount("a-tt", "traced tax llc", status="Prospect"))
    request = SyncRequest(
        request_id=unique("request"),
        firm_id=firm.firm_id,
        kind="sync",
        requested_at=datetime.now(UTC),
    )
    with tracing.span("sync now pressed") as pressed:
        await system.producer.send(SYNC_REQUESTS, firm.firm_id, request)
    trace_id, pressed_id = hex_ids(pressed)

    async def finished_run() -> tuple[str, str] | None:
        row = await system.pool.fetchrow(
            "SELECT run_id, status FROM sync_runs WHERE firm_id = $1 AND $2 = ANY(request_ids)",
            firm.firm_id,
            request.request_id,
        )
        done = row is not None and row["status"] in ("done", "failed")
        return (str(row["run_id"]), row["status"]) if done else None

    run_id, status = await eventually(finished_run, timeout=60, what="the run finished")
    assert status == "done"
    steps = {"sync import", "sync match", "sync push"}

    async def every_step() -> list[ReceivedSpan] | None:
        spans = receiver.of_trace(trace_id)
        return spans if steps <= {span.name for span in spans} else None

    spans = await eventually(every_step, what="the three steps' spans")
    (consumed,) = named(spans, "consume sync.requests")
    assert (consumed.service, consumed.parent_id) == ("qbsync-importer", pressed_id)
    services = {"sync import": "qbsync-importer", "sync match": "qbsync-matcher"}
    services["sync push"] = "qbsync-matcher"
    for name, service in services.items():
        (step,) = named(spans, name)
        assert (step.service, step.parent_id) == (service, consumed.span_id)
        assert step.attributes["qbsync.run_id"] == run_id
    (imported,) = named(spans, "sync import")
    assert imported.attributes["qbsync.customers"] == 2
    pages = named(spans, "quickbooks query_customers")
    assert pages and {page.parent_id for page in pages} == {imported.span_id}
    # The matcher stores the imported customers a batch at a time, in the import's trace:
    # a span per batch, never per customer.
    batches = named(spans, "consume qbo.customers")
    assert batches and {batch.service for batch in batches} == {"qbsync-matcher"}
    assert {batch.parent_id for batch in batches} == {imported.span_id}
    assert sum(batch.attributes["messaging.batch.message_count"] for batch in batches) >= 2
    assert await firm.link_of("a-tt") is not None
