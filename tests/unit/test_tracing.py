"""Tracing: off unless an OTLP endpoint is set, trace ids in the logs, spans per batch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from types import SimpleNamespace

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from qbsync import tracing
from qbsync.log import JsonFormatter
from tests.support.traces import hex_ids, recording_spans

OFF = """
import sys
from qbsync import bootstrap, log, tracing
assert tracing.configure("pusher", {}) is None
assert not tracing.enabled()
with tracing.span("work") as span:
    assert span is None
    assert tracing.kafka_headers() is None and tracing.current_traceparent() is None
print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))
"""


def test_without_an_endpoint_tracing_is_off_and_the_sdk_is_never_loaded() -> None:
    """A process with tracing off installs no exporter, writes no header and never even
    imports the SDK (its own process: other tests here load the SDK)."""
    done = subprocess.run(
        [sys.executable, "-c", OFF], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_endpoint_turns_on_an_otlp_http_exporter_named_after_the_service() -> None:
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    try:
        provider = tracing.configure("pusher", endpoint)
        assert provider is not None and tracing.enabled()
        assert provider.resource.attributes["service.name"] == "qbsync-pusher"
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor._batch_processor._exporter, OTLPSpanExporter)
        provider.shutdown()
        named = tracing.configure("pusher", {**endpoint, "OTEL_SERVICE_NAME": "pusher-eu"})
        assert named is not None
        assert named.resource.attributes["service.name"] == "pusher-eu"
        named.shutdown()
    finally:
        tracing.use(None)


def log_line(message: str) -> dict[str, object]:
    record = logging.LogRecord("qbsync.test", logging.INFO, __file__, 1, message, None, None)
    entry: dict[str, object] = json.loads(JsonFormatter("pusher").format(record))
    return entry


def test_log_lines_carry_the_current_trace_and_span_ids_when_tracing_is_on() -> None:
    with recording_spans(), tracing.span("work") as span:
        inside = log_line("inside")
    assert (inside["trace_id"], inside["span_id"]) == hex_ids(span)
    with recording_spans():
        assert "trace_id" not in log_line("outside any span")
    with tracing.span("off"):
        assert "trace_id" not in log_line("tracing off")


def message(traceparent: str | None) -> SimpleNamespace:
    headers = [] if traceparent is None else [("traceparent", traceparent.encode())]
    return SimpleNamespace(headers=[("other", b"x"), *headers])


def test_a_batch_span_continues_its_first_traced_message_and_links_the_others() -> None:
    with recording_spans() as exporter:
        producers = []
        for name in ("a", "b", "c"):
            with tracing.span(name):
                producers.append(tracing.current_traceparent())
        first, second, third = producers
        batch = [message(None), message(first), message(second), message(first), message(third)]
        with tracing.batch_span("consume topic", batch):
            pass
    spans = {span.name: span for span in exporter.get_finished_spans()}
    handled = spans["consume topic"]
    assert handled.parent is not None
    assert handled.parent.span_id == spans["a"].context.span_id
    assert handled.context.trace_id == spans["a"].context.trace_id
    linked = [link.context.span_id for link in handled.links]
    assert linked == [spans["b"].context.span_id, spans["c"].context.span_id]
    assert handled.attributes is not None
    assert handled.attributes["messaging.batch.message_count"] == 5


def test_messages_sent_inside_a_span_carry_its_context_as_a_w3c_traceparent() -> None:
    with recording_spans(), tracing.span("send") as span:
        headers = tracing.kafka_headers()
    trace_id, span_id = hex_ids(span)
    assert span is not None
    flags = format(span.get_span_context().trace_flags, "02x")  # sampled (and random ids)
    assert headers == [("traceparent", f"00-{trace_id}-{span_id}-{flags}".encode())]
    assert tracing.traceparent_of(headers) == f"00-{trace_id}-{span_id}-{flags}"
    assert tracing.kafka_headers() is None  # off again
