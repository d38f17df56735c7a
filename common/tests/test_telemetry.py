"""Trace context through the outbox and NATS, and log lines that join the trace.

With the SDK's in-memory exporter (common.telemetry.using_provider: the global provider is left
alone): an event written inside a span keeps that span's context in its outbox entry; a relay
started after a crash publishes it in that trace; the listener's span is a child of the publish;
every line logged inside the handler carries its trace_id, span_id and the event's entity ids.
"""

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from common.events import Envelope, TicketCreated
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.logging import JsonFormatter
from common.messaging import ConsumerPolicy, Listener, ListenerRunner, Publisher
from common.outbox import Outbox, OutboxRelay
from gittix_testing import TestBus
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from common import telemetry

log = logging.getLogger("test.telemetry.handler")


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with telemetry.using_provider(provider):
        yield exporter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("tickets"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        log.removeHandler(handler)


class LoggingListener(Listener[TicketCreated, None]):
    event = TicketCreated

    def __init__(self, runtime: Any = None) -> None:
        super().__init__(runtime)
        self.handled = asyncio.Event()

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        log.info("ticket %s noted", event.id)
        self.handled.set()


def ticket_created() -> TicketCreated:
    return TicketCreated(id="t1", version=0, title="Gig", price=Decimal("5"), user_id="u1")


async def test_a_republished_entry_continues_its_trace_to_the_listener_and_its_log_lines(
    bus: TestBus, database: Any, exported: InMemorySpanExporter, log_lines: io.StringIO
) -> None:
    outbox = Outbox((TicketCreated,), service="tickets")
    # Written inside a request's span; the process then dies before the relay ran.
    with telemetry.span("PUT /api/tickets/{ticket_id}", kind=SpanKind.SERVER) as request:
        await outbox.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created())
    (entry,) = (await database.tickets.find_one({"_id": "t1"}))["outbox"]
    assert set(entry[telemetry.TRACE_FIELD]) >= {"traceparent"}

    listener = LoggingListener()
    runner = ListenerRunner(
        bus.js,
        "tickets",
        [listener],
        FailureLedger(database[FAILURES_COLLECTION]),
        policy=ConsumerPolicy(fetch_seconds=0.05),
    )
    await runner.start()
    try:
        # The next process's relay, outside any span, publishes what was left.
        assert await OutboxRelay([database.tickets], Publisher(bus.js)).relay_once() == 1
        async with asyncio.timeout(10):
            await listener.handled.wait()
    finally:
        await runner.stop(grace=1)

    spans = {span.name: span for span in exported.get_finished_spans()}
    publish = spans["publish ticketing.ticket.created.v1"]
    process = spans["process ticketing.ticket.created.v1"]
    trace_id = request.get_span_context().trace_id
    assert {publish.context.trace_id, process.context.trace_id} == {trace_id}
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert publish.kind == SpanKind.PRODUCER
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert process.kind == SpanKind.CONSUMER
    assert process.attributes is not None
    assert process.attributes["gittix.outcome"] == "acked"
    (line,) = [json.loads(text) for text in log_lines.getvalue().splitlines()]
    assert line["message"] == "ticket t1 noted"
    assert line["trace_id"] == format(trace_id, "032x")
    assert line["span_id"] == format(process.context.span_id, "016x")
    assert (line["ticket_id"], line["user_id"]) == ("t1", "u1")
    assert line["event_id"] == entry["id"]


async def test_with_tracing_off_nothing_is_stored_or_sent(bus: TestBus, database: Any) -> None:
    assert not telemetry.tracing_enabled()
    outbox = Outbox((TicketCreated,), service="tickets")
    with telemetry.span("request"):
        await outbox.insert_one(database.tickets, {"_id": "t1", "version": 0}, ticket_created())

    (entry,) = (await database.tickets.find_one({"_id": "t1"}))["outbox"]
    assert telemetry.TRACE_FIELD not in entry
    await OutboxRelay([database.tickets], Publisher(bus.js)).relay_once()
    message = await bus.js.get_msg("TICKETING", 1)
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == entry["id"]
    assert not {"traceparent", "tracestate"} & set(message.headers)
