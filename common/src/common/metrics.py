"""Prometheus metrics: every metric the services export, the HTTP middleware and `/metrics`.

Each data service serves `/metrics` on its own port (never routed by the entry point or the
ingress: routing.ROUTES sends only /api/<service> there). Labels are bounded: route templates,
event types, durable consumer names, outcomes; never an id. Gauges that describe stored or
remote state (outbox backlog, consumer lag, pending timers, readiness) are read at scrape time,
so they are as fresh as the scrape and cost nothing between scrapes.
"""

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.types import utc_now

# Request and handler latencies: from a cached read to a slow Stripe call.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Expiry lateness: the goal is under a second even in bursts (bench/README.md).
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter(
    "gittix_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "gittix_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
EVENTS_PUBLISHED = Counter(
    "gittix_events_published_total",
    "Events the outbox relay published, by type and outcome "
    "(stored; duplicate: the stream already had that event id; failed).",
    ["type", "outcome"],
)
EVENTS_HANDLED = Counter(
    "gittix_events_handled_total",
    "Deliveries handled by a listener, by durable consumer, event type and outcome "
    "(acked; waiting: its predecessor has not arrived; retried: failed, to be retried; "
    "dead_lettered; kept: the dead-letter stream refused it, retried later).",
    ["consumer", "type", "outcome"],
)
EVENTS_DROPPED = Counter(
    "gittix_events_dropped_total",
    "Events acked without effect because nothing they concern exists here "
    "(e.g. an update for an order this service never wrote), by event type.",
    ["type"],
)
EVENT_HANDLING_DURATION = Histogram(
    "gittix_event_handling_duration_seconds",
    "Time a listener took over one delivery, by durable consumer.",
    ["consumer"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_PENDING = Gauge(
    "gittix_outbox_pending_entries",
    "Outbox entries written but not yet published, by collection.",
    ["collection"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "gittix_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox entry (0 when none), by collection.",
    ["collection"],
)
CONSUMER_PENDING = Gauge(
    "gittix_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer.",
    ["consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "gittix_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not yet acknowledged.",
    ["consumer"],
)
CONSUMER_REDELIVERED = Gauge(
    "gittix_consumer_redelivered_messages",
    "Messages the durable consumer has had delivered more than once and still holds.",
    ["consumer"],
)
CONSUMER_STALLED = Gauge(
    "gittix_consumer_stalled",
    "1 when the consumer has completed no fetch for LISTENER_STALL_SECONDS.",
    ["consumer"],
)
READY = Gauge(
    "gittix_ready",
    "1 when the readiness check passes (what /readyz answers), by check.",
    ["check"],
)
EXPIRY_LATENESS = Histogram(
    "gittix_expiry_lateness_seconds",
    "How long after an order's expiresAt its OrderExpired was written.",
    buckets=LATENESS_BUCKETS,
)
EXPIRY_PENDING_TIMERS = Gauge(
    "gittix_expiry_pending_timers", "Expiry timers armed and not yet fired or dropped."
)
CHARGES = Counter(
    "gittix_charges_total",
    "Attempts to take a charge at Stripe by outcome (succeeded; declined: the card, the bank "
    "or 3-D Secure refused; unavailable: Stripe could not be reached; cancelled: the order "
    "ended before paying; pending: waiting for the buyer's challenge or for Stripe).",
    ["outcome"],
)
REFUNDS = Counter(
    "gittix_refunds_total",
    "Refunds of cancelled orders' charges by outcome (refunded; unavailable: Stripe could not "
    "be reached, the sweeper tries again).",
    ["outcome"],
)
SIGN_IN_THROTTLED = Counter(
    "gittix_sign_in_throttled_total",
    "Sign-ins refused by a throttle, by reason (client_limit: too many attempts from one "
    "address; account_locked: this client's failures hold the account back for a while).",
    ["reason"],
)


class HttpMetrics:
    """Counts and times every request by its route template (`/api/orders/{order_id}`, never
    the concrete path); paths that match no route share the label `unmatched`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router writes the matched route into this same scope.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            if route != "/metrics":
                method = scope["method"]
                HTTP_REQUESTS.labels(method, route, str(status)).inc()
                HTTP_DURATION.labels(method, route).observe(time.perf_counter() - started)


# What a service adds to a scrape: a coroutine that sets its own gauges (expiration's timers).
Refresh = Callable[[Any], Awaitable[None]]


def oldest_age_seconds(entries: list[dict[str, Any]], now: datetime | None = None) -> float:
    """Seconds since the oldest entry's `occurred_at` (0 when there is none)."""
    times = [datetime.fromisoformat(str(entry["occurred_at"])) for entry in entries]
    if not times:
        return 0.0
    return max(((now or utc_now()) - min(times)).total_seconds(), 0.0)


def metrics_router(refresh: Callable[[Request], Awaitable[None]]) -> APIRouter:
    """GET /metrics in Prometheus' text format, after `refresh` has set the scrape-time gauges."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await refresh(request)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


DEAD_LETTERS = Gauge(
    "gittix_dead_letters",
    "Messages waiting in the dead-letter stream (the same figure from every service).",
)
STREAM_USED_RATIO = Gauge(
    "gittix_stream_used_ratio",
    "How full a stream is against its max_bytes (0 to 1), by stream.",
    ["stream"],
)
