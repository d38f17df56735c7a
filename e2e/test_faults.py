"""Fault injection: real processes and nats-server, a steady mix of users, one fault at a time.

Sellers create and edit tickets; buyers reserve, pay (localstripe), cancel, or let orders expire.
While that traffic runs, each test injects one fault:

  a. every service in turn killed with SIGKILL mid-flow, then started again;
  b. nats-server killed with SIGKILL and started again on the same file store;
  c. a service paused (SIGSTOP) for longer than the old give-up budget, then resumed;
  d. a burst of thousands of TicketCreated with the TicketUpdated of the last right behind;
  e. stored events delivered again, duplicated and out of order (new message ids);
  f. Stripe unreachable (it stops answering) in the middle of payments, then back.

After each, the traffic stops and the consistency checker (devserver.verify, what `make verify`
runs) must report the system clean within SETTLE_SECONDS: every replica equal to its source, no
double sale, no dead letter, no charge without its completed order or a refund. The figures of a
run are printed at the end of the module (pytest -s) and recorded in docs/architecture.md.

Durations are shortened through settings, each named below with what it stands for. The
services' databases live in gittix_testing.mongo_server, a process of their own, so a service
killed outright finds its data again as it would with MongoDB (the embedded store would lose it).
"""

import asyncio
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import nats
import pytest
from bson import ObjectId
from common.events import Envelope, TicketCreated
from common.messaging import STREAM_NAME, Publisher
from common.types import utc_now
from devserver.harness import RunningSystem, running_system
from devserver.verify import Report, Sources, check
from gittix_testing.processes import ManagedProcess, free_port
from gittix_testing.waiting import wait_until, within
from pymongo import AsyncMongoClient

PASSWORD = "correct horse battery"
SELLERS = 2
BUYERS = 5
# An order's lock: short, so some orders expire while the traffic runs.
EXPIRATION_SECONDS = 4
# Listener back-off scaled down 10x (0.2 s -> 0.02 s, cap 5 s -> 0.5 s): the old give-up budget
# of 10 deliveries (~26 s) becomes ~2.6 s, so PAUSE_SECONDS outlasts it as 60 s outlasts 26 s.
RETRY_BASE_SECONDS = 0.02
RETRY_MAX_SECONDS = 0.5
PAUSE_SECONDS = 6.0
# Stripe: a 2 s timeout and no SDK retry, so an attempt's lease (timeout x tries + 5 s) is 7 s.
STRIPE_TIMEOUT_SECONDS = 2
STRIPE_OUTAGE_SECONDS = 6.0
BURST_TICKETS = 2000
REPLAYED_EVENTS = 400
# Traffic before and after each fault, in completed operations.
OPERATIONS_BEFORE = 15
OPERATIONS_AFTER = 15
# From the end of the traffic until the checker must find the system clean: a minute, and for
# the burst as long as orders needs to work through its backlog on a loaded 2-core machine
# (~50 s for 2,000 here; the limit leaves three times that).
SETTLE_SECONDS = 60.0
BURST_SETTLE_SECONDS = 180.0
TRAFFIC_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 10.0
# How long a buyer keeps trying to pay an order payments has not heard of yet (404).
PAY_PATIENCE_SECONDS = 2.0

SYSTEM_ENV = {
    "ORDER_EXPIRATION_SECONDS": str(EXPIRATION_SECONDS),
    # The traffic is a handful of busy buyers: no rate limit or slot count gets in its way.
    "ORDERS_RATE_LIMIT": "100000",
    "ORDERS_MAX_ACTIVE_PER_USER": "100",
    "LISTENER_RETRY_BASE_SECONDS": str(RETRY_BASE_SECONDS),
    "LISTENER_RETRY_MAX_SECONDS": str(RETRY_MAX_SECONDS),
    "STRIPE_TIMEOUT_SECONDS": str(STRIPE_TIMEOUT_SECONDS),
    "STRIPE_MAX_NETWORK_RETRIES": "0",
    "PAYMENTS_SWEEP_SECONDS": "1",
    # Every user of the traffic signs up from 127.0.0.1: auth's per-client limits are lifted.
    "SIGNUP_CLIENT_LIMIT": "100000",
    "SIGNIN_CLIENT_LIMIT": "100000",
}

DATA_SERVICES = ("auth", "tickets", "orders", "expiration", "payments")
# A scenario restarts processes on a 2-core machine shared with the rest of the run: more than
# the default per-test limit, still bounded.
pytestmark = pytest.mark.timeout(420)


@dataclass
class Figures:
    """One scenario's numbers, for the table at the end."""

    scenario: str
    faults: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    differences_first_seen: int = 0
    settle_seconds: float = 0.0
    total_seconds: float = 0.0
    note: str = ""


FIGURES: list[Figures] = []


@dataclass
class FaultySystem:
    """The running system, its database server, and how to read it."""

    system: RunningSystem
    mongo_url: str
    sellers: list[httpx.AsyncClient] = field(default_factory=list)
    buyers: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def sources(self) -> Sources:
        urls = {name: self.system.service_url(name) for name in DATA_SERVICES}
        # Stripe's own records too: money taken at Stripe must be a charge's, and refunded
        # when its order ended cancelled.
        return Sources(urls, self.system.nats_url, stripe_url=self.system.system.stripe_api_base)

    def child(self, name: str) -> Any:
        return self.system.system.children[name]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSystem, str]]:
    port = free_port()
    store = ManagedProcess(
        "mongo",
        [sys.executable, "-m", "gittix_testing.mongo_server", "--port", str(port)],
        port=port,
    )
    mongo_url = f"mongodb://127.0.0.1:{port}/"
    with (
        store,
        running_system(
            tmp_path_factory.mktemp("faults"), env={**SYSTEM_ENV, "MONGO_URL": mongo_url}
        ) as system,
    ):
        yield system, mongo_url
    print_figures()


@pytest.fixture
async def faulty(started: tuple[RunningSystem, str]) -> AsyncIterator[FaultySystem]:
    """The system with signed-up sellers and buyers (each an own HTTPS client and session)."""
    system, mongo_url = started
    async with AsyncExitStack() as stack:
        faulty = FaultySystem(system, mongo_url)
        for group, count in ((faulty.sellers, SELLERS), (faulty.buyers, BUYERS)):
            for _ in range(count):
                client = await stack.enter_async_context(
                    system.client(timeout=REQUEST_TIMEOUT_SECONDS)
                )
                email = f"{uuid.uuid4().hex[:12]}@example.com"
                response = await client.post(
                    "/api/users/signup", json={"email": email, "password": PASSWORD}
                )
                assert response.status_code == 201, response.text
                group.append(client)
        yield faulty


class Traffic:
    """Sellers and buyers working until stopped; counts what they did and what failed."""

    def __init__(self, faulty: FaultySystem, seed: int) -> None:
        self.faulty = faulty
        self.random = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.tickets: list[str] = []
        self.own: dict[int, list[str]] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def operations(self) -> int:
        return sum(n for what, n in self.counts.items() if not what.startswith("refused"))

    def start(self) -> None:
        for index, seller in enumerate(self.faulty.sellers):
            self._tasks.append(asyncio.create_task(self._seller(index, seller)))
        for buyer in self.faulty.buyers:
            self._tasks.append(asyncio.create_task(self._buyer(buyer)))

    async def stop(self) -> None:
        self._stop.set()
        async with within(REQUEST_TIMEOUT_SECONDS * 3, "the traffic did not stop"):
            await asyncio.gather(*self._tasks)

    async def ran(self, operations: int) -> None:
        """Wait until `operations` more operations have been done."""
        target = self.operations + operations
        await wait_until(
            lambda: self.operations >= target,
            timeout=TRAFFIC_SECONDS,
            interval=0.1,
            message=f"the traffic did not get {operations} operations done ({self.counts})",
        )

    async def _request(
        self,
        http: httpx.AsyncClient,
        what: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
    ) -> httpx.Response | None:
        """One user action; a 401 (the minute-long access token ran out) gets a new access
        token from the refresh cookie and the action is sent once more, as the web client does.
        Answers that are not the service's decision count as refused, not as operations."""
        try:
            response = await http.request(method, path, json=body)
            if response.status_code == 401:
                refreshed = await http.post("/api/users/refresh")
                if refreshed.status_code == 200:
                    response = await http.request(method, path, json=body)
        except httpx.HTTPError:
            self.counts["refused (no answer)"] += 1
            return None
        if response.status_code >= 500 or response.status_code in (401, 403, 429):
            self.counts[f"refused ({response.status_code})"] += 1
            return None
        self.counts[f"{what} {response.status_code}"] += 1
        return response

    async def _pace(self) -> None:
        # The traffic's rate, not a wait for anything: a user does something every ~50 ms.
        await asyncio.sleep(0.05)

    async def _seller(self, index: int, http: httpx.AsyncClient) -> None:
        own = self.own.setdefault(index, [])
        while not self._stop.is_set():
            if own and self.random.random() < 0.3:
                ticket_id = self.random.choice(own)
                price = self.random.randint(5, 200)
                title = f"edited {uuid.uuid4().hex[:6]}"
                await self._request(
                    http,
                    "edit",
                    "PUT",
                    f"/api/tickets/{ticket_id}",
                    {"title": title, "price": price},
                )
            else:
                price = self.random.randint(5, 200)
                title = f"show {uuid.uuid4().hex[:6]}"
                response = await self._request(
                    http, "create", "POST", "/api/tickets", {"title": title, "price": price}
                )
                if response is not None and response.status_code == 201:
                    own.append(response.json()["id"])
                    self.tickets.append(response.json()["id"])
            await self._pace()

    async def _buyer(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            if self.tickets:
                ticket_id = self.random.choice(self.tickets[-20:])
                response = await self._request(
                    http, "reserve", "POST", "/api/orders", {"ticketId": ticket_id}
                )
                if response is not None and response.status_code == 201:
                    await self._follow_up(http, response.json()["id"])
            await self._pace()

    async def _follow_up(self, http: httpx.AsyncClient, order_id: str) -> None:
        choice = self.random.random()
        if choice < 0.55:
            # payments may not have heard of the order yet (404): a buyer tries again for a
            # couple of seconds; an order never paid simply expires.
            give_up_at = asyncio.get_running_loop().time() + PAY_PATIENCE_SECONDS
            while True:
                paid = await self._request(
                    http,
                    "pay",
                    "POST",
                    "/api/payments",
                    {"orderId": order_id, "token": "pm_card_visa"},
                )
                if paid is None or paid.status_code != 404:
                    return
                if asyncio.get_running_loop().time() >= give_up_at:
                    return
                await self._pace()
        elif choice < 0.8:
            await self._request(http, "cancel", "DELETE", f"/api/orders/{order_id}")
        else:
            self.counts["left to expire"] += 1


async def settle(faulty: FaultySystem, figures: Figures, within_seconds: float) -> Report:
    """Wait until the checker finds the system clean; the report it gave last."""
    started = time.monotonic()
    reports: list[Report] = []

    async def clean() -> bool:
        reports.append(await check(faulty.sources))
        return reports[-1].clean

    first = await check(faulty.sources)
    figures.differences_first_seen = (
        len(first.differences) + len(first.double_sales) + first.dead_letters
    )
    try:
        # Each check reads every service's whole state: once a second is enough.
        await wait_until(clean, timeout=within_seconds, interval=1.0, message="never clean")
    except AssertionError:
        pass
    figures.settle_seconds = time.monotonic() - started
    return reports[-1] if reports else first


async def run_scenario(
    faulty: FaultySystem,
    name: str,
    inject: Callable[[Traffic, Figures], Awaitable[None]],
    *,
    settle_seconds: float = SETTLE_SECONDS,
) -> Report:
    """Traffic, the fault, more traffic, then wait for the checker; records the figures."""
    figures = Figures(name)
    FIGURES.append(figures)
    started = time.monotonic()
    traffic = Traffic(faulty, seed=len(FIGURES))
    traffic.start()
    try:
        await traffic.ran(OPERATIONS_BEFORE)
        await inject(traffic, figures)
        await traffic.ran(OPERATIONS_AFTER)
    finally:
        await traffic.stop()
    figures.operations = traffic.counts
    report = await settle(faulty, figures, settle_seconds)
    figures.total_seconds = time.monotonic() - started
    return report


def assert_clean(report: Report) -> None:
    assert report.differences == [], report.render()
    assert report.double_sales == [], report.render()
    assert report.dead_letters == 0, report.render()


async def signal_child(faulty: FaultySystem, name: str, signum: signal.Signals) -> None:
    process = faulty.child(name).process
    assert process is not None and process.poll() is None, f"{name} is not running"
    process.send_signal(signum)


# --- the scenarios ------------------------------------------------------------------------------


async def test_a_each_service_killed_mid_flow_then_restarted(faulty: FaultySystem) -> None:
    async def kill_each(traffic: Traffic, figures: Figures) -> None:
        for name in DATA_SERVICES:
            await asyncio.to_thread(faulty.system.kill, name)
            figures.faults += 1
            # Started again while the others keep working; start() waits until it is ready.
            await asyncio.to_thread(faulty.system.start, name)
            await traffic.ran(OPERATIONS_BEFORE)

    assert_clean(await run_scenario(faulty, "a. SIGKILL each service, restart", kill_each))


async def test_b_nats_killed_and_restarted_on_its_store(faulty: FaultySystem) -> None:
    async def kill_nats(traffic: Traffic, figures: Figures) -> None:
        nats_server = faulty.child("nats")
        await asyncio.to_thread(nats_server.kill)
        figures.faults += 1
        await asyncio.to_thread(nats_server.start)
        await asyncio.to_thread(nats_server.wait_listening)

    assert_clean(await run_scenario(faulty, "b. SIGKILL nats-server, restart", kill_nats))


@pytest.mark.parametrize("paused", ["orders", "tickets", "payments"])
async def test_c_a_service_paused_longer_than_the_old_budget(
    faulty: FaultySystem, paused: str
) -> None:
    async def pause(traffic: Traffic, figures: Figures) -> None:
        await signal_child(faulty, paused, signal.SIGSTOP)
        figures.faults += 1
        try:
            # The others keep publishing meanwhile: the traffic goes on (requests to the
            # paused service time out and are counted as refused).
            # The fault's length is the point here, not a condition to wait for.
            await asyncio.sleep(PAUSE_SECONDS)
        finally:
            await signal_child(faulty, paused, signal.SIGCONT)

    report = await run_scenario(faulty, f"c. SIGSTOP {paused} {PAUSE_SECONDS:.0f} s", pause)
    assert_clean(report)


async def test_d_a_burst_of_ticket_created_with_an_update_right_behind(
    faulty: FaultySystem,
) -> None:
    async def burst(traffic: Traffic, figures: Figures) -> None:
        seller = faulty.sellers[0]
        # A fresh access token (they last a minute) for what this seller does below.
        refreshed = await seller.post("/api/users/refresh")
        assert refreshed.status_code == 200, refreshed.text
        me = refreshed.json()["id"]
        events = [
            TicketCreated(
                id=str(ObjectId()), version=0, title=f"burst {n}", price=Decimal(10), user_id=me
            )
            for n in range(BURST_TICKETS)
        ]
        # The tickets exist in tickets' database as its repository stores them, already
        # published (empty outbox)...
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(faulty.mongo_url)
        try:
            await client["tickets"]["tickets"].insert_many(
                [
                    {
                        "_id": ObjectId(event.id),
                        "title": event.title,
                        "price_cents": 1000,
                        "user_id": me,
                        "order_id": None,
                        "version": 0,
                        "created_at": utc_now(),
                        "released_order_ids": [],
                    }
                    for event in events
                ]
            )
        finally:
            await client.close()
        # ...and their TicketCreated go out on the bus all at once, through the public
        # contract (an envelope per event, Nats-Msg-Id = its id), faster than orders can
        # take them in: orders' TicketCreated consumer gets a backlog of thousands.
        nc = await nats.connect(faulty.system.nats_url)
        try:
            publisher = Publisher(nc.jetstream())
            for start in range(0, len(events), 200):
                chunk = events[start : start + 200]
                await asyncio.gather(*(publisher.publish(event) for event in chunk))
        finally:
            await nc.close()
        figures.faults += 1
        last = events[-1].id
        # The last one edited right behind, through the API: its TicketUpdated (v1) reaches
        # orders at once, long before its TicketCreated (v0) does at the end of the backlog.
        edited = await seller.put(
            f"/api/tickets/{last}", json={"title": "burst, last", "price": 77}
        )
        assert edited.status_code == 200, edited.text
        # Buyers go for the burst's last ticket too.
        traffic.tickets.append(last)

    report = await run_scenario(
        faulty,
        f"d. {BURST_TICKETS} TicketCreated + update",
        burst,
        settle_seconds=BURST_SETTLE_SECONDS,
    )
    assert_clean(report)


async def test_e_stored_events_delivered_again_duplicated_and_reordered(
    faulty: FaultySystem,
) -> None:
    async def replay(traffic: Traffic, figures: Figures) -> None:
        nc = await nats.connect(faulty.system.nats_url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(STREAM_NAME)
            first, last = info.state.first_seq, info.state.last_seq
            chosen = traffic.random.sample(
                range(first, last + 1), min(REPLAYED_EVENTS, last - first + 1)
            )
            # Each at least once, some twice, all shuffled, each under a new message id (so
            # the stream keeps it: the duplicate window drops only a repeated id).
            order = chosen + traffic.random.sample(chosen, len(chosen) // 4)
            traffic.random.shuffle(order)
            for sequence in order:
                stored = await js.get_msg(STREAM_NAME, sequence)
                assert stored.subject is not None and stored.data is not None
                Envelope.model_validate_json(stored.data)  # a real event of the contract
                await js.publish(
                    stored.subject,
                    stored.data,
                    stream=STREAM_NAME,
                    headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}"},
                )
                figures.faults += 1
        finally:
            await nc.close()

    report = await run_scenario(faulty, "e. events republished, dup + shuffled", replay)
    assert_clean(report)


async def test_f_stripe_unreachable_mid_payment_then_back(faulty: FaultySystem) -> None:
    async def outage(traffic: Traffic, figures: Figures) -> None:
        paid_before = traffic.counts["pay 201"]
        await signal_child(faulty, "stripe", signal.SIGSTOP)
        figures.faults += 1
        try:
            # Payments are attempted while Stripe does not answer (each times out).
            await wait_until(
                lambda: (
                    traffic.counts["refused (503)"] + traffic.counts["pay 402"] > 0
                    or traffic.counts["refused (no answer)"] > 0
                ),
                timeout=TRAFFIC_SECONDS,
                message="no payment was attempted during the outage",
            )
            # The outage's length is the point here, not a condition to wait for.
            await asyncio.sleep(STRIPE_OUTAGE_SECONDS)
        finally:
            await signal_child(faulty, "stripe", signal.SIGCONT)
        figures.note = f"{traffic.counts['pay 201'] - paid_before} paid during the outage"

    report = await run_scenario(faulty, "f. Stripe unanswering, then back", outage)
    assert_clean(report)


def print_figures() -> None:
    if not FIGURES:
        return
    print(
        "\n| scenario | faults | operations (2xx/4xx) | refused | differences right after | "
        "clean after | scenario time |"
    )
    print("|---|---|---|---|---|---|---|")
    for figures in FIGURES:
        done = sum(n for what, n in figures.operations.items() if not what.startswith("refused"))
        refused = sum(n for what, n in figures.operations.items() if what.startswith("refused"))
        print(
            f"| {figures.scenario} | {figures.faults} | {done} | {refused} | "
            f"{figures.differences_first_seen} | {figures.settle_seconds:.1f} s | "
            f"{figures.total_seconds:.1f} s |"
        )
    for figures in FIGURES:
        print(f"{figures.scenario}: {dict(sorted(figures.operations.items()))} {figures.note}")
