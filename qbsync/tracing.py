"""Tracing with OpenTelemetry: off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

`configure(service)` is called once, by the composition root (qbsync/bootstrap.py), when a
process starts. With no endpoint nothing is installed: `span()` yields None at the cost of
one check, no header is written to a message and no field is added to a log line. With an
endpoint, spans go to it over OTLP/HTTP (a batch at a time, from the SDK's own thread) as
service `OTEL_SERVICE_NAME`, by default `qbsync-<service>`.

The trace context crosses processes as a W3C `traceparent`: in Kafka message headers
(`kafka_headers`, `traceparent_of`), and in the database beside what another process picks
up later (an outbox row, a sync run: `current_traceparent`).

Spans cover a batch, a run's step or a QuickBooks call, never one record of a bulk flow.
A batch's span (`batch_span`) continues the trace of its first message and links to the
other traces its messages carry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

TRACEPARENT = "traceparent"
Headers = list[tuple[str, str | bytes | None]]  # a Kafka message's, as producers take them
# Either turns tracing on (the second is the standard one for traces alone).
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# A batch of 500 messages from as many producers would make as many links; the SDK keeps
# 128 at most anyway, and a few dozen say enough about where a batch came from.
MAX_LINKS = 32

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None  # None: tracing is off


def configure(service: str, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Export spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the exporter reads the OTEL_EXPORTER_OTLP_*
    variables of the process itself. Otherwise stay off. Returns the provider, whose
    `shutdown()` sends what is still buffered."""
    if not any(environ.get(variable) for variable in ENDPOINT_VARIABLES):
        return None
    # Imported only when on: a process with tracing off never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = environ.get("OTEL_SERVICE_NAME") or f"qbsync-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use(provider)
    return provider


def use(provider: trace.TracerProvider | None) -> None:
    """Make `provider` the one qbsync's spans go to (None: off; tests swap in their own)."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("qbsync")


def enabled() -> bool:
    return _tracer is not None


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for a log line; None when off or
    outside a span."""
    if _tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def current_traceparent() -> str | None:
    """The current span's context as a W3C traceparent (to store beside an outbox row or a
    run); None when off or outside a span."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def kafka_headers(traceparent: str | None = None) -> Headers | None:
    """Headers carrying `traceparent` (by default the current span's) on a Kafka message;
    None when there is nothing to carry."""
    value = traceparent or current_traceparent()
    return None if value is None else [(TRACEPARENT, value.encode())]


def traceparent_of(headers: Iterable[tuple[str, bytes | None]] | None) -> str | None:
    """The traceparent a Kafka message carries in its headers, if any."""
    for name, value in headers or ():
        if name == TRACEPARENT and value:
            return value.decode(errors="replace")
    return None


def _span_context(traceparent: str | None) -> SpanContext | None:
    if traceparent is None:
        return None
    context = trace.get_current_span(_PROPAGATOR.extract({TRACEPARENT: traceparent}))
    span_context = context.get_span_context()
    return span_context if span_context.is_valid else None


@contextmanager
def span(
    name: str,
    *,
    parent: str | None = None,
    links: Iterable[str] = (),
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A span around the block (None when off). Its parent is the `parent` traceparent if
    it is one (a message's, a run's), otherwise the current span; `links` are traceparents
    of other traces this work continues."""
    if _tracer is None:
        yield None
        return
    parent_context = _span_context(parent)
    context = None
    if parent_context is not None:
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent_context))
    linked = [Link(c) for c in map(_span_context, links) if c is not None][:MAX_LINKS]
    with _tracer.start_as_current_span(
        name, context=context, links=linked, attributes=dict(attributes or {})
    ) as current:
        yield current


@contextmanager
def batch_span(
    name: str, messages: Sequence[Any], attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A span around the handling of a batch of Kafka `messages` (anything with `headers`):
    it continues the trace of the first message that carries one, and links to the other
    traces the batch's messages carry (each once)."""
    if _tracer is None:
        yield None
        return
    carried = dict.fromkeys(
        value for value in (traceparent_of(m.headers) for m in messages) if value is not None
    )
    traces = list(carried)
    with span(
        name,
        parent=traces[0] if traces else None,
        links=traces[1:],
        attributes={"messaging.batch.message_count": len(messages), **(attributes or {})},
    ) as current:
        yield current
