"""One purchase is one trace across all five services, through HTTP, the outbox and NATS.

The system runs as `make up` runs it, every service and the entry point (Caddy's tracing
handler) exporting its spans over OTLP/HTTP to a receiver in this test
(devserver.trace_receiver, decoding with opentelemetry-proto). The buyer's root span is recorded
by the SDK's in-memory exporter here; every request carries its `traceparent`, as a browser with
OpenTelemetry would. The services' databases are on gittix_testing.mongo_server, which PyMongo
talks to over the wire protocol (the embedded store of `make up` sends no MongoDB commands), so
the PyMongo instrumentation's spans are in the trace too. Last, a purchase made in Chromium on the
web client's pages is one trace, started by the client itself.
"""

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from devserver.harness import RunningSystem, running_system
from devserver.trace import PASSWORD, TRACING_ENV, buyer_account, purchase, seller_ticket
from devserver.trace_receiver import ReceivedSpan, TraceReceiver, receiving, render
from gittix_testing import wait_until
from gittix_testing.processes import ManagedProcess, free_port
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer
from playwright.sync_api import Request, expect, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, entry_point_spki

EXPIRATION_SECONDS = 6
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")
FIVE = {"auth", "tickets", "orders", "expiration", "payments"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[TraceReceiver]:
    with receiving() as received:
        yield received


@pytest.fixture(scope="module")
def traced_system(
    receiver: TraceReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    port = free_port()
    store = ManagedProcess(
        "mongo",
        [sys.executable, "-m", "gittix_testing.mongo_server", "--port", str(port)],
        port=port,
    )
    env = {
        **TRACING_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "ORDER_EXPIRATION_SECONDS": str(EXPIRATION_SECONDS),
        "MONGO_URL": f"mongodb://127.0.0.1:{port}/",
    }
    with store, running_system(Path(tmp_path_factory.mktemp("traced")), env=env) as system:
        yield system


@pytest.fixture
def buyer_spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(buyer_spans: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(buyer_spans))
    return provider.get_tracer("e2e.buyer")


def named(spans: list[ReceivedSpan], service: str, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.service == service and s.name == name]


def parent_of(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan | None:
    return next((s for s in spans if s.span_id == span.parent_id), None)


def database_calls_under(spans: list[ReceivedSpan], service: str) -> list[ReceivedSpan]:
    """`service`'s MongoDB commands (PyMongo instrumentation's client spans) whose parent is one
    of its requests or its handling of an event."""
    return [
        s
        for s in spans
        if s.service == service
        and s.kind == "client"
        and s.attributes.get("db.system") == "mongodb"
        and (parent := parent_of(spans, s)) is not None
        and parent.service == service
        and parent.kind in {"server", "consumer"}
    ]


def hop_arrived(spans: list[ReceivedSpan], subject: str, listener: str) -> bool:
    """`listener`'s handling of `subject` and the publish it continues have both arrived (each
    process exports its spans on its own schedule)."""
    handled = named(spans, listener, f"process {subject}")
    return bool(handled) and all(parent_of(spans, span) is not None for span in handled)


def assert_hop(spans: list[ReceivedSpan], subject: str, publisher: str, listener: str) -> None:
    """`listener` handled `subject` in a consumer span whose parent is `publisher`'s publish."""
    handled = named(spans, listener, f"process {subject}")
    assert handled, f"{listener} has no span handling {subject}:\n{render(spans)}"
    for span in handled:
        parent = parent_of(spans, span)
        assert parent is not None, f"{listener}'s {span.name} has no parent in the trace"
        assert (parent.service, parent.name, parent.kind) == (
            publisher,
            f"publish {subject}",
            "producer",
        )
        assert span.kind == "consumer"


async def test_a_purchase_is_one_trace_across_all_five_services(
    traced_system: RunningSystem,
    receiver: TraceReceiver,
    tracer: Tracer,
    buyer_spans: InMemorySpanExporter,
) -> None:
    ticket_id = await seller_ticket(traced_system)
    email = await buyer_account(traced_system)

    bought = await purchase(traced_system, tracer, ticket_id=ticket_id, email=email)

    (root,) = buyer_spans.get_finished_spans()
    assert root.name == "purchase"
    assert format(root.context.trace_id, "032x") == bought.trace_id
    hops = [
        ("ticketing.order.created.v1", "orders", "tickets"),
        ("ticketing.order.created.v1", "orders", "expiration"),
        ("ticketing.order.created.v1", "orders", "payments"),
        ("ticketing.ticket.updated.v1", "tickets", "orders"),
        ("ticketing.charge.created.v1", "payments", "orders"),
        ("ticketing.charge.updated.v1", "payments", "orders"),
        ("ticketing.order.updated.v1", "orders", "expiration"),
    ]

    async def every_hop_arrived() -> bool:
        spans = receiver.spans(bought.trace_id)
        # Caddy exports on its own schedule: its spans are the requests' parents.
        requests = [s for s in spans if s.kind == "server" and s.service != "entry-point"]
        return (
            all(hop_arrived(spans, subject, to) for subject, _, to in hops)
            and all(parent_of(spans, request) is not None for request in requests)
            and all(database_calls_under(spans, service) for service in FIVE)
        )

    await wait_until(every_hop_arrived, timeout=30, message="the purchase's trace never completed")
    spans = receiver.spans(bought.trace_id)
    assert {s.service for s in spans} == {*FIVE, "entry-point"}, render(spans)
    # Each HTTP request is a span at the entry point, child of the buyer's root span, and the
    # service's span is its child.
    root_id = format(root.context.span_id, "016x")
    requests = {s.service: s for s in spans if s.kind == "server" and s.service != "entry-point"}
    for service, prefix in (("auth", "/api/users"), ("orders", "/api/orders")):
        entry = parent_of(spans, requests[service])
        assert entry is not None, render(spans)
        assert (entry.service, entry.name, entry.parent_id) == (
            "entry-point",
            f"entry {prefix}",
            root_id,
        )
    assert requests["orders"].name == "POST /api/orders"
    # The order's OrderCreated is published from its outbox inside the request's trace.
    (created,) = named(spans, "orders", "publish ticketing.order.created.v1")
    assert created.trace_id == bought.trace_id
    for subject, publisher, listener in hops:
        assert_hop(spans, subject, publisher, listener)
    # Each service's requests and handlers reach its own database, each command a span: the
    # order is written inside POST /api/orders.
    for service in FIVE:
        calls = database_calls_under(spans, service)
        assert calls, f"{service} has no MongoDB span under a request or handler:\n{render(spans)}"
        assert {call.attributes.get("db.name") for call in calls} == {service}, render(spans)
    assert any(
        parent_of(spans, call) == requests["orders"] and call.name.endswith(".insert")
        for call in database_calls_under(spans, "orders")
    ), render(spans)
    # Nothing in the purchase failed.
    assert not [s for s in spans if s.error], render(spans)


async def test_an_expiry_continues_the_trace_of_the_order_that_armed_it(
    traced_system: RunningSystem, receiver: TraceReceiver, tracer: Tracer
) -> None:
    ticket_id = await seller_ticket(traced_system, title="Opera night")
    email = await buyer_account(traced_system)

    reserved = await purchase(traced_system, tracer, ticket_id=ticket_id, email=email, pay=False)

    async def cancelled_after_expiry() -> bool:
        spans = receiver.spans(reserved.trace_id)
        return (
            hop_arrived(spans, "ticketing.order.expired.v1", "orders")
            and hop_arrived(spans, "ticketing.order.cancelled.v1", "tickets")
            and bool(named(spans, "expiration", "expire order"))
            and bool(named(spans, "expiration", "process ticketing.order.created.v1"))
        )

    await wait_until(
        cancelled_after_expiry,
        timeout=EXPIRATION_SECONDS + 30,
        message="the expiry never showed in the order's trace",
    )
    spans = receiver.spans(reserved.trace_id)
    # The timer fired in a span whose parent is the handling of the OrderCreated that armed it.
    (expired,) = named(spans, "expiration", "expire order")
    armed = parent_of(spans, expired)
    assert armed is not None
    assert (armed.service, armed.name) == ("expiration", "process ticketing.order.created.v1")
    assert expired.start_ns - armed.start_ns >= (EXPIRATION_SECONDS - 1) * 1e9
    (published,) = named(spans, "expiration", "publish ticketing.order.expired.v1")
    assert parent_of(spans, published) == expired
    assert_hop(spans, "ticketing.order.expired.v1", "expiration", "orders")
    assert_hop(spans, "ticketing.order.cancelled.v1", "orders", "tickets")


def test_a_purchase_in_the_browser_is_one_trace(
    traced_system: RunningSystem, receiver: TraceReceiver
) -> None:
    """The web client starts the trace when Purchase is pressed: the order and the payment
    made on the pages are one trace, each request's entry-point span a child of the span id
    the browser sent."""
    ticket_id = asyncio.run(seller_ticket(traced_system, title="Jazz evening"))
    email = asyncio.run(buyer_account(traced_system))
    sent: list[tuple[str, str | None]] = []  # API path, traceparent

    def record(request: Request) -> None:
        path = request.url.removeprefix(traced_system.url)
        if path.startswith("/api/"):
            sent.append((path, request.headers.get("traceparent")))

    spki = entry_point_spki(traced_system.url, traced_system.ca_cert)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on("request", record)
            page.goto(f"{traced_system.url}/signin")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("navigation", name="Main")).to_contain_text(email)
            page.goto(f"{traced_system.url}/tickets/{ticket_id}")
            page.get_by_role("button", name="Purchase").click()
            page.get_by_role("button", name="Pay $45.50").click()
            expect(page.get_by_text("Order completed.")).to_be_visible(timeout=20_000)
        finally:
            browser.close()

    traced = [(path, TRACEPARENT.fullmatch(tp or "")) for path, tp in sent]
    assert ("/api/users/signin", None) in traced  # before the purchase: outside its trace
    in_purchase = [match for _, match in traced if match]
    assert {path for path, match in traced if match} >= {"/api/orders", "/api/payments"}
    (trace_id,) = {match.group(1) for match in in_purchase}
    browser_span_ids = {match.group(2) for match in in_purchase}

    def the_purchase_arrived() -> bool:
        spans = receiver.spans(trace_id)
        requests = [s for s in spans if s.kind == "server" and s.service != "entry-point"]
        return (
            {"POST /api/orders", "POST /api/payments"} <= {s.name for s in requests}
            and all(parent_of(spans, request) is not None for request in requests)
            and hop_arrived(spans, "ticketing.charge.created.v1", "orders")
        )

    asyncio.run(
        wait_until(
            the_purchase_arrived, timeout=30, message="the browser's purchase was not one trace"
        )
    )
    spans = receiver.spans(trace_id)
    assert {"orders", "payments", "entry-point"} <= {s.service for s in spans}, render(spans)
    entries = [s for s in spans if s.service == "entry-point"]
    assert {s.name for s in entries} >= {"entry /api/orders", "entry /api/payments"}
    assert {s.parent_id for s in entries} <= browser_span_ids, render(spans)
    assert_hop(spans, "ticketing.charge.created.v1", "payments", "orders")
