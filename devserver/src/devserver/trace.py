"""`make trace`: start the whole system exporting its traces, make one purchase, print its trace.

The system runs as `make up` runs it (free ports, a temporary data directory), with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local OTLP/HTTP receiver (devserver.trace_receiver).
A buyer signs in, reserves a ticket and pays inside one "purchase" span whose `traceparent`
every request carries (as a browser with OpenTelemetry would); every span the services record
for it (HTTP, MongoDB on a real mongod, outbox publishes, each listener) is printed as a tree.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Tracer

from devserver.harness import RunningSystem, running_system
from devserver.trace_receiver import ReceivedSpan, TraceReceiver, receiving, render

PASSWORD = "correct horse battery"
# Spans are exported in batches: this short delay keeps the wait for a whole trace short.
TRACING_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


@dataclass
class Purchase:
    trace_id: str
    order_id: str
    ticket_id: str


async def _until_found(call: Any, *, timeout: float = 30.0) -> httpx.Response:
    """Repeat a request while it is 404 (the service has not heard of the entity yet)."""
    deadline = time.monotonic() + timeout
    while True:
        response: httpx.Response = await call()
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


async def seller_ticket(system: RunningSystem, *, title: str = "Cup final") -> str:
    """A ticket for sale, put up by a new seller (outside any purchase's trace)."""
    async with system.client() as seller:
        email = f"seller-{uuid.uuid4().hex[:8]}@example.com"
        signed_up = await seller.post(
            "/api/users/signup", json={"email": email, "password": PASSWORD}
        )
        assert signed_up.status_code == 201, signed_up.text
        sold = await seller.post("/api/tickets", json={"title": title, "price": 45.5})
        assert sold.status_code == 201, sold.text
        return str(sold.json()["id"])


async def buyer_account(system: RunningSystem) -> str:
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    async with system.client() as http:
        response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
    return email


async def purchase(
    system: RunningSystem, tracer: Tracer, *, ticket_id: str, email: str, pay: bool = True
) -> Purchase:
    """Sign in, reserve `ticket_id` and (if `pay`) pay, all inside one root span."""
    async with system.client() as buyer:
        with tracer.start_as_current_span("purchase", kind=SpanKind.CLIENT) as root:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            signed_in = await buyer.post(
                "/api/users/signin", json={"email": email, "password": PASSWORD}, headers=headers
            )
            assert signed_in.status_code == 200, signed_in.text
            reserved = await _until_found(
                lambda: buyer.post("/api/orders", json={"ticketId": ticket_id}, headers=headers)
            )
            assert reserved.status_code == 201, reserved.text
            order_id = str(reserved.json()["id"])
            if pay:
                paid = await _until_found(
                    lambda: buyer.post(
                        "/api/payments",
                        json={"orderId": order_id, "token": "pm_card_visa"},
                        headers=headers,
                    )
                )
                assert paid.status_code == 201, paid.text
            trace_id = format(root.get_span_context().trace_id, "032x")
    return Purchase(trace_id=trace_id, order_id=order_id, ticket_id=ticket_id)


async def settled(
    receiver: TraceReceiver, trace_id: str, *, quiet_seconds: float = 2.0, timeout: float = 30.0
) -> list[ReceivedSpan]:
    """The trace's spans once no new one has arrived for `quiet_seconds` (or at `timeout`)."""
    deadline = time.monotonic() + timeout
    count, changed = -1, time.monotonic()
    while time.monotonic() < deadline:
        spans = receiver.spans(trace_id)
        if len(spans) != count:
            count, changed = len(spans), time.monotonic()
        elif time.monotonic() - changed >= quiet_seconds:
            break
        await asyncio.sleep(0.1)
    return receiver.spans(trace_id)


def buyer_tracer(exporter: SpanExporter) -> Tracer:
    """The buyer's own tracer (the "purchase" root span), exporting to `exporter`."""
    provider = TracerProvider(resource=Resource.create({"service.name": "buyer"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("gittix.buyer")


async def _show(system: RunningSystem, receiver: TraceReceiver, *, expire: bool) -> int:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tracer = buyer_tracer(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces"))
    ticket_id = await seller_ticket(system)
    bought = await purchase(
        system, tracer, ticket_id=ticket_id, email=await buyer_account(system), pay=not expire
    )
    quiet = 2.0 if not expire else float(system_expiry_seconds(expire)) + 3.0
    spans = await settled(receiver, bought.trace_id, quiet_seconds=quiet, timeout=60)
    print(render(spans))
    return 0


def system_expiry_seconds(expire: bool) -> int:
    return 5 if expire else 900


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make trace", description=__doc__)
    parser.add_argument(
        "--expire",
        action="store_true",
        help="reserve without paying and let the order expire (5 s): the trace goes on "
        "through expiration's timer to OrderExpired and the cancellation",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gittix-trace-") as data, receiving() as receiver:
        env = {
            **TRACING_ENV,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "ORDER_EXPIRATION_SECONDS": str(system_expiry_seconds(args.expire)),
        }
        print("starting the system with tracing on (about a minute on a busy machine)...")
        with running_system(Path(data), env=env) as system:
            return asyncio.run(_show(system, receiver, expire=args.expire))


if __name__ == "__main__":
    sys.exit(main())
