"""Bounded shutdown with work in flight: each service, sent SIGTERM under load, exits in time.

The system runs exactly as `make up` runs it. Each test loads one service (requests in flight,
events being handled, its outbox publishing, a Stripe call hanging), sends it SIGTERM, and
checks that it exits cleanly (uvicorn's own exit, not the watchdog's) within 10 s, that every
request it took was answered (2xx, or 503 "restarting"), and that nothing it accepted was lost.
The embedded store does not outlive the process, so the stream is the record: whatever was
answered 2xx must have gone out on it before the exit, and every event the service acknowledged
must have had its effect published. The service is started again afterwards.
"""

import asyncio
import itertools
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from common.auth import SESSION_COOKIE
from common.events import (
    ChargeCreated,
    ChargeUpdated,
    Envelope,
    OrderCreated,
    TicketCreated,
    TicketUpdated,
    UserCreated,
)
from common.messaging import STREAM_NAME
from common.shutdown import SHUTTING_DOWN_MESSAGE
from devserver.harness import RunningSystem, running_system
from gittix_testing.bus import TestBus
from gittix_testing.waiting import wait_until
from nats.js.api import DeliverPolicy

SHUTDOWN_LIMIT_SECONDS = 10.0
EVENTUAL = 30.0
# Well under the listeners' ack_wait (30 s), after which JetStream would redeliver anyway.
BEFORE_ACK_WAIT = 15.0
PASSWORD = "correct horse battery"
RESTARTING = {"errors": [{"message": SHUTTING_DOWN_MESSAGE}]}
# Enough concurrent clients that requests are always in flight when the signal lands.
WORKERS = 6


@pytest.fixture(scope="module")
def stripe_black_hole() -> Iterator[str]:
    """A "Stripe" that takes connections and never answers, so a charge hangs in flight."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture(scope="module")
def system(
    stripe_black_hole: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    env = {
        "STRIPE_SECRET_KEY": "sk_test_black_hole",
        "STRIPE_API_BASE": stripe_black_hole,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        # One buyer places many orders quickly here; the buyer limits are tested elsewhere.
        "ORDERS_MAX_ACTIVE_PER_USER": "1000",
        "ORDERS_RATE_LIMIT": "1000",
        # Every sign-up here comes from 127.0.0.1: auth's per-address limits are tested in
        # auth/tests.
        "SIGNUP_CLIENT_LIMIT": "100000",
        "SIGNIN_CLIENT_LIMIT": "100000",
    }
    with running_system(tmp_path_factory.mktemp("system"), env=env) as running:
        yield running


@dataclass
class Stopped:
    signalled_at: float
    exited_at: float
    returncode: int

    @property
    def seconds(self) -> float:
        return self.exited_at - self.signalled_at


@pytest.fixture
async def sigterm(system: RunningSystem) -> AsyncIterator[Callable[[str], Awaitable[Stopped]]]:
    """SIGTERM a service and wait (bounded) for it to exit; it is started again afterwards."""
    stopped: list[str] = []

    async def stop(name: str) -> Stopped:
        child = system.system.children[name]
        process = child.process
        assert process is not None and process.poll() is None, f"{name} is not running"
        stopped.append(name)
        signalled_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            returncode = await asyncio.to_thread(process.wait, SHUTDOWN_LIMIT_SECONDS + 20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{name} still running 30 s after SIGTERM") from None
        return Stopped(signalled_at, time.monotonic(), returncode)

    yield stop
    for name in stopped:
        if not system.system.children[name].running:
            await asyncio.to_thread(system.start, name)


@dataclass
class Outcome:
    key: Any
    finished_at: float
    response: httpx.Response | None = None
    error: httpx.TransportError | None = None


@dataclass
class Load:
    """Workers sending requests back to back until stopped or until the service is gone."""

    send: Callable[[Any], Awaitable[httpx.Response]]
    keys: Iterator[Any]
    workers: int = WORKERS
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> "Load":
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        return self

    async def _work(self) -> None:
        while not self._stop.is_set():
            key = next(self.keys, None)
            if key is None:
                return
            try:
                response = await self.send(key)
            except httpx.TransportError as error:
                self.outcomes.append(Outcome(key, time.monotonic(), error=error))
                if isinstance(error, httpx.ConnectError):
                    return  # the service has stopped listening
            else:
                self.outcomes.append(Outcome(key, time.monotonic(), response=response))

    async def stop(self) -> None:
        self._stop.set()
        async with asyncio.timeout(EVENTUAL):
            await asyncio.gather(*self._tasks)

    def answered(self, status: int) -> list[Outcome]:
        return [o for o in self.outcomes if o.response and o.response.status_code == status]

    def assert_answered_or_refused(self, stopped: Stopped, *accepted: int) -> None:
        """Every answer is one of `accepted` or 503 "restarting"; no request failed without an
        answer before the signal (after it, new connections are refused and, in the kernel's
        backlog, reset: those requests never reached the service)."""
        for outcome in self.outcomes:
            if outcome.response is not None:
                response = outcome.response
                if response.status_code == 503:
                    assert response.json() == RESTARTING
                else:
                    assert response.status_code in accepted, response.text
            else:
                assert outcome.finished_at >= stopped.signalled_at, repr(outcome.error)


def direct(system: RunningSystem, name: str, session: str | None = None) -> httpx.AsyncClient:
    """A client for one service's own address: one connection per request, so none is idle
    (and closed under it) when the signal lands."""
    return httpx.AsyncClient(
        base_url=system.service_url(name),
        headers={"Cookie": f"{SESSION_COOKIE}={session}"} if session else {},
        limits=httpx.Limits(max_keepalive_connections=0),
        timeout=EVENTUAL,
    )


async def sign_up(system: RunningSystem) -> tuple[str, str]:
    """A new user: (id, session token)."""
    async with system.client() as browser:
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        response = await browser.post(
            "/api/users/signup", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        token = browser.cookies.get(SESSION_COOKIE)
        assert token is not None
        return str(response.json()["id"]), token


async def tickets_for_sale(
    system: RunningSystem, stream: TestBus, seller: str, count: int
) -> list[str]:
    """`count` new tickets that orders already knows (it learns of them by events)."""
    async with direct(system, "tickets", seller) as tickets:
        responses = await asyncio.gather(
            *(
                tickets.post("/api/tickets", json={"title": f"Gig {i}", "price": 10 + i})
                for i in range(count)
            )
        )
    ids = []
    for response in responses:
        assert response.status_code == 201, response.text
        ids.append(str(response.json()["id"]))
    for ticket_id in ids:
        await stream.wait_for(TicketCreated, id=ticket_id, timeout=EVENTUAL)
    await stream.wait_consumer_idle("orders-ticket-created-v1", timeout=EVENTUAL)
    return ids


def new_ticket_body(index: int) -> dict[str, Any]:
    return {"title": f"Late gig {index}", "price": 20}


async def test_orders_stops_in_time_and_every_accepted_order_is_published(
    system: RunningSystem, stream: TestBus, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    _, seller = await sign_up(system)
    _, buyer = await sign_up(system)
    ticket_ids = await tickets_for_sale(system, stream, seller, 60)

    async with (
        direct(system, "orders", buyer) as orders,
        direct(system, "tickets", seller) as tickets,
    ):
        reserving = Load(
            lambda ticket_id: orders.post("/api/orders", json={"ticketId": ticket_id}),
            iter(ticket_ids),
        ).start()
        # New tickets keep arriving, so orders is handling TicketCreated when the signal lands.
        selling = Load(
            lambda index: tickets.post("/api/tickets", json=new_ticket_body(index)),
            itertools.count(),
            workers=2,
        ).start()
        await wait_until(
            lambda: len(reserving.answered(201)) >= 5, timeout=EVENTUAL, message="orders placed"
        )
        stopped = await sigterm("orders")
        await reserving.stop()
        await selling.stop()

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    reserving.assert_answered_or_refused(stopped, 201)
    placed = [o.response.json()["id"] for o in reserving.answered(201) if o.response]
    assert placed
    # Published before the exit: the store they were in is gone with the process.
    for order_id in placed:
        await stream.wait_for(OrderCreated, id=order_id, timeout=EVENTUAL)
    # The TicketCreated orders had fetched but not handled were given back, not left to time
    # out: the restarted orders has handled everything well before ack_wait would redeliver.
    await asyncio.to_thread(system.start, "orders")
    await stream.wait_consumer_idle("orders-ticket-created-v1", timeout=BEFORE_ACK_WAIT)


async def test_tickets_stops_in_time_and_every_reservation_it_acknowledged_is_published(
    system: RunningSystem, stream: TestBus, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    _, seller = await sign_up(system)
    _, buyer = await sign_up(system)
    ticket_ids = await tickets_for_sale(system, stream, seller, 60)
    order_seqs = await watch_sequences(stream, OrderCreated.subject)

    async with (
        direct(system, "orders", buyer) as orders,
        direct(system, "tickets", seller) as tickets,
    ):
        # Orders keep coming, so tickets is reserving (handling OrderCreated) at the signal,
        # while sellers' requests are in flight.
        reserving = Load(
            lambda ticket_id: orders.post("/api/orders", json={"ticketId": ticket_id}),
            iter(ticket_ids),
            workers=3,
        ).start()
        selling = Load(
            lambda index: tickets.post("/api/tickets", json=new_ticket_body(index)),
            itertools.count(),
        ).start()
        ours = set(ticket_ids)
        await wait_until(
            lambda: (
                len([t for t in stream.published(TicketUpdated) if t.id in ours]) >= 5
                and selling.answered(201)
            ),
            timeout=EVENTUAL,
            message="tickets reserving and selling",
        )
        stopped = await sigterm("tickets")
        await reserving.stop()
        await selling.stop()

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    selling.assert_answered_or_refused(stopped, 201)
    sold = [o.response.json()["id"] for o in selling.answered(201) if o.response]
    assert sold
    for ticket_id in sold:
        await stream.wait_for(TicketCreated, id=ticket_id, timeout=EVENTUAL)
    # Never half-applied: every OrderCreated tickets acknowledged had its reservation
    # published before the exit; the rest are still there to be redelivered.
    placed = [o.response.json()["id"] for o in reserving.answered(201) if o.response]
    await wait_until(
        lambda: set(placed) <= set(order_seqs.values()),
        timeout=EVENTUAL,
        message="every order placed is on the stream",
    )
    info = await stream.consumer_info("tickets-order-created-v1")
    acknowledged = {
        order
        for seq, order in order_seqs.items()
        if seq <= info.ack_floor.stream_seq and order in placed
    }
    assert acknowledged
    assert acknowledged <= {event.order_id for event in stream.published(TicketUpdated)}


async def watch_sequences(stream: TestBus, subject: str) -> dict[int, str]:
    """Stream sequence -> event id of every event on `subject`, kept up to date."""
    seen: dict[int, str] = {}

    async def record(msg: Any) -> None:
        seen[msg.metadata.sequence.stream] = Envelope.model_validate_json(msg.data).data["id"]

    await stream.js.subscribe(
        subject,
        stream=STREAM_NAME,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=record,
    )
    return seen


async def test_payments_answers_a_charge_hanging_at_stripe_and_stops_in_time(
    system: RunningSystem, stream: TestBus, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    _, seller = await sign_up(system)
    buyer_id, buyer = await sign_up(system)
    [ticket_id] = await tickets_for_sale(system, stream, seller, 1)
    async with direct(system, "orders", buyer) as orders:
        placed = await orders.post("/api/orders", json={"ticketId": ticket_id})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    await stream.wait_for(UserCreated, id=buyer_id, timeout=EVENTUAL)
    await stream.wait_for(OrderCreated, id=order_id, timeout=EVENTUAL)
    await stream.wait_consumer_idle("payments-user-created-v1", timeout=EVENTUAL)
    await stream.wait_consumer_idle("payments-order-created-v1", timeout=EVENTUAL)

    async with direct(system, "payments", buyer) as payments:
        paying = asyncio.create_task(
            payments.post("/api/payments", json={"orderId": order_id, "token": "tok_visa"})
        )
        # Recorded before Stripe is called: from here the charge hangs at the black hole.
        charge = await stream.wait_for(ChargeCreated, order_id=order_id, timeout=EVENTUAL)
        stopped = await sigterm("payments")
        async with asyncio.timeout(EVENTUAL):
            answer = await paying

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    assert (answer.status_code, answer.json()) == (503, RESTARTING)
    # Left as a crash would leave it: unresolved, to be replayed with its idempotency key.
    assert stream.published(ChargeUpdated, id=charge.id) == []


async def test_auth_stops_in_time_and_every_user_it_signed_up_is_published(
    system: RunningSystem, stream: TestBus, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    async with direct(system, "auth") as auth:
        signing_up = Load(
            lambda index: auth.post(
                "/api/users/signup",
                json={
                    "email": f"{uuid.uuid4().hex[:12]}-{index}@example.com",
                    "password": PASSWORD,
                },
            ),
            itertools.count(),
        ).start()
        await wait_until(
            lambda: len(signing_up.answered(201)) >= 3, timeout=EVENTUAL, message="sign-ups"
        )
        stopped = await sigterm("auth")
        await signing_up.stop()

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    signing_up.assert_answered_or_refused(stopped, 201)
    for outcome in signing_up.answered(201):
        assert outcome.response is not None
        await stream.wait_for(UserCreated, id=outcome.response.json()["id"], timeout=EVENTUAL)


async def test_expiration_stops_in_time_while_its_scheduler_sleeps_and_orders_arrive(
    system: RunningSystem, stream: TestBus, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    _, seller = await sign_up(system)
    _, buyer = await sign_up(system)
    ticket_ids = await tickets_for_sale(system, stream, seller, 30)

    async with direct(system, "orders", buyer) as orders:
        # Timers far in the future (the scheduler sleeps towards them) and new ones arriving.
        reserving = Load(
            lambda ticket_id: orders.post("/api/orders", json={"ticketId": ticket_id}),
            iter(ticket_ids),
            workers=2,
        ).start()
        await wait_until(
            lambda: len(reserving.answered(201)) >= 5, timeout=EVENTUAL, message="orders placed"
        )
        stopped = await sigterm("expiration")
        await reserving.stop()

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    # What it had fetched but not handled was given back, not left to ack_wait.
    await asyncio.to_thread(system.start, "expiration")
    await stream.wait_consumer_idle("expiration-order-created-v1", timeout=BEFORE_ACK_WAIT)


async def test_client_stops_in_time_with_pages_in_flight(
    system: RunningSystem, sigterm: Callable[[str], Awaitable[Stopped]]
) -> None:
    async with direct(system, "client") as client:
        browsing = Load(lambda _: client.get("/"), itertools.count()).start()
        await wait_until(
            lambda: len(browsing.answered(200)) >= 5, timeout=EVENTUAL, message="pages served"
        )
        stopped = await sigterm("client")
        await browsing.stop()

    assert stopped.returncode == -signal.SIGTERM
    assert stopped.seconds < SHUTDOWN_LIMIT_SECONDS
    browsing.assert_answered_or_refused(stopped, 200)
