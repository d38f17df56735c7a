"""Tracing with OpenTelemetry: on when OTEL_EXPORTER_OTLP_ENDPOINT is set, off and free when not.

Off, nothing is installed: the API's no-op tracer answers every call, no middleware wraps the
app and no PyMongo listener is registered. On, each service exports its spans over OTLP/HTTP,
FastAPI and PyMongo are instrumented, and the trace context travels with every event: stored
in its outbox entry (so a republish after a crash continues the same trace), sent in the NATS
headers as W3C `traceparent`/`tracestate`, and read back by the listener that handles it.
"""

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

log = logging.getLogger("common.telemetry")

TRACER_NAME = "gittix"
# Paths probed every few seconds: a span each would bury the purchases.
UNTRACED_PATHS = "healthz,readyz,metrics,consumers,snapshot"

# Where a stored outbox entry or timer keeps the trace context it was written in.
TRACE_FIELD = "trace"

_instrumented_clients = False
# A provider used instead of the global one (tests: an in-memory exporter per test, since the
# global provider can be set only once per process).
_local_provider: TracerProvider | None = None


def _provider() -> trace.TracerProvider:
    return _local_provider or trace.get_tracer_provider()


def tracing_enabled() -> bool:
    """Whether an SDK tracer provider is in use in this process (ours, or a test's)."""
    return isinstance(_provider(), TracerProvider)


@contextmanager
def using_provider(provider: TracerProvider) -> Iterator[TracerProvider]:
    """Trace with `provider` inside the block (tests), whatever the global provider is."""
    global _local_provider
    previous, _local_provider = _local_provider, provider
    try:
        yield provider
    finally:
        _local_provider = previous


def configure_tracing(
    service: str, endpoint: str | None, *, exporter: SpanExporter | None = None
) -> bool:
    """Install the SDK for `service`, exporting to `endpoint` (OTLP/HTTP) or to `exporter`.

    Does nothing without either, or when a provider is already installed (one per process: a
    test that installs an in-memory one keeps it). Returns whether tracing is on.
    """
    if not tracing_enabled() and (endpoint or exporter is not None):
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")  # type: ignore[union-attr]
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        log.info("tracing on: spans go to %s", endpoint or type(exporter).__name__)
    on = tracing_enabled()
    if on:
        _instrument_clients()
    return on


def _instrument_clients() -> None:
    # PyMongo's command monitoring, which its async client reports too (the embedded
    # in-memory store has none: it is not MongoDB, so it issues no commands), and httpx, which
    # the Stripe SDK's HTTPXClient (payments) sends its calls with: a client span per call.
    global _instrumented_clients
    if not _instrumented_clients:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        PymongoInstrumentor().instrument()
        HTTPXClientInstrumentor().instrument()
        _instrumented_clients = True


def instrument_app(app: FastAPI) -> None:
    """A server span per request, named by its route template, continuing an incoming
    `traceparent` (the entry point's)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls=UNTRACED_PATHS,
        tracer_provider=_provider(),
        # A span per ASGI message would double the trace for nothing a reader needs.
        exclude_spans=["receive", "send"],
    )


def flush(timeout_seconds: float = 2.0) -> None:
    """Export what is buffered (at shutdown, so the last spans are not lost)."""
    provider = _provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(int(timeout_seconds * 1000))


def tracer() -> trace.Tracer:
    return _provider().get_tracer(TRACER_NAME)


def current_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, `tracestate`); empty when no
    span is being recorded (tracing off, or nothing to continue)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The context a carrier (stored entry, NATS headers) holds; None when it holds none."""
    if not carrier or "traceparent" not in carrier:
        return None
    return propagate.extract(dict(carrier))


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span, child of `parent` (a carrier) when it holds a context, else of the current span.

    Off, this is the API's no-op span: the current one, which a no-op tracer would start and
    make current again (so nothing is started or attached), unless `parent` carries a context
    to pass on.
    """
    current = trace.get_current_span()
    if (
        isinstance(current, NonRecordingSpan)
        and not (parent and "traceparent" in parent)
        and not tracing_enabled()
    ):
        yield current
        return
    with tracer().start_as_current_span(
        name,
        context=context_from(parent),
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


def mark_error(current: Span, description: str) -> None:
    """Mark a span failed without an exception propagating through it (a handler's failure
    that the consumer turned into a retry or a dead letter)."""
    if current.is_recording():
        current.set_status(Status(StatusCode.ERROR, description))
