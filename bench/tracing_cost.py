"""What a span costs in this process's CPU, tracing off and on (bench/README.md, Tracing).

    make bench-tracing    (= .venv/bin/python -m bench.tracing_cost)

The places that open spans run once per batch, step or QuickBooks call, so a record's
share is a span's cost over the records of its batch; `make bench-sync` with and without
OTEL_EXPORTER_OTLP_ENDPOINT (and bench/otlp_sink.py) measures the whole path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from qbsync import tracing

CALLS = 20_000
BATCH = 500  # the consumers' MAX_RECORDS


def cpu_per_call(label: str, body: Callable[[], object]) -> None:
    started = time.process_time()
    for _ in range(CALLS):
        body()
    print(f"{label:<60} {(time.process_time() - started) / CALLS * 1e6:8.2f} µs CPU per call")


def main() -> None:
    untraced = [SimpleNamespace(headers=()) for _ in range(BATCH)]

    def span() -> None:
        with tracing.span("work", attributes={"qbsync.realm_id": "1"}):
            pass

    def batch_span(messages: list[SimpleNamespace]) -> Callable[[], None]:
        def body() -> None:
            with tracing.batch_span("consume topic", messages):
                pass

        return body

    cpu_per_call("off: span", span)
    cpu_per_call(f"off: batch_span of {BATCH} messages", batch_span(untraced))
    cpu_per_call("off: kafka_headers", tracing.kafka_headers)
    provider = TracerProvider()
    # The services' processor; an exporter that sends nowhere keeps the network out of it.
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    tracing.use(provider)
    try:
        with tracing.span("producer"):
            carried = tracing.current_traceparent() or ""
        traced = [SimpleNamespace(headers=(("traceparent", carried.encode()),))] * BATCH
        cpu_per_call("on: span", span)
        cpu_per_call(f"on: batch_span of {BATCH} messages (one context)", batch_span(traced))
        with tracing.span("sending"):
            cpu_per_call("on: kafka_headers inside a span", tracing.kafka_headers)
    finally:
        tracing.use(None)
        provider.shutdown()


if __name__ == "__main__":
    main()
