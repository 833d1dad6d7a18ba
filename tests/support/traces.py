"""Spans recorded in memory, for tests (the SDK's InMemorySpanExporter)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span

from qbsync import tracing


@contextmanager
def recording_spans(service: str = "qbsync-test") -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process while the block runs, every span kept in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
        provider.shutdown()


def hex_ids(span: Span | None) -> tuple[str, str]:
    """(trace id, span id) of `span` in hex, as exporters and log lines show them."""
    assert span is not None, "tracing is off"
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
