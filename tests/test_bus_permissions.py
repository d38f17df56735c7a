"""The NATS users `make up` runs with, on the real nats-server: every service can do its own work
and nothing else (it cannot forge another service's events, read what it does not listen to,
or read another service's replies)."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import nats
import pytest
from common.bus_permissions import ADMIN_USER, every_user
from common.catalog import load_contracts
from common.events import ChargeUpdated, Envelope, OrderExpired, TicketUpdated
from common.messaging import STREAM_NAME, Publisher, ensure_stream, inbox_prefix
from devserver.infrastructure import bus_users, nats_server
from gittix_testing.processes import ManagedProcess, free_port
from gittix_testing.waiting import wait_until
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError

CONTRACTS = {contract.name: contract for contract in load_contracts()}
# How long a refused request is given before it counts as unanswered: the server refuses at
# once, so this only bounds the wait for an answer that never comes.
REFUSED_WITHIN = 1.0


class Bus:
    """make up's nats-server with its users, and connections as any of them."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.users = bus_users(data_dir)
        command = nats_server(data_dir, self.port, self.users)
        self.server = ManagedProcess("nats", command.args, port=self.port, env=command.env)

    async def connect(
        self, user: str, errors: list[str] | None = None, password: str | None = None
    ) -> NatsClient:
        async def collect(error: Exception) -> None:
            if errors is not None:
                errors.append(str(error))

        url = self.users.url(self.port, user)
        if password is not None:
            url = url.replace(self.users.passwords[user], password)
        return await nats.connect(
            url,
            inbox_prefix=inbox_prefix(user),
            error_cb=collect,
            allow_reconnect=False,
            connect_timeout=5,
        )


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bus]:
    running = Bus(tmp_path_factory.mktemp("bus"))
    running.server.start()
    try:
        yield running
    finally:
        running.server.stop()


Connect = Callable[..., Awaitable[NatsClient]]


@pytest.fixture
async def connect(bus: Bus) -> AsyncIterator[Connect]:
    """Connect as a user; every connection is closed after the test."""
    opened: list[NatsClient] = []

    async def open_as(user: str, errors: list[str] | None = None, **kwargs: str) -> NatsClient:
        nc = await bus.connect(user, errors, **kwargs)
        opened.append(nc)
        if user == ADMIN_USER:
            await ensure_stream(nc.jetstream())
        return nc

    yield open_as
    for nc in opened:
        await nc.close()


def charge_completed() -> Envelope:
    return Envelope.wrap(
        ChargeUpdated(
            id=uuid.uuid4().hex,
            version=1,
            order_id=uuid.uuid4().hex,
            status="completed",
            amount=1000,
            stripe_id=None,
            stripe_refund_id=None,
        )
    )


async def stored(admin: NatsClient, envelope: Envelope) -> bool:
    """Whether the event stream holds this very envelope (as the last on its subject)."""
    try:
        message = await admin.jetstream().get_last_msg(STREAM_NAME, envelope.subject)
    except NotFoundError:
        return False
    return message.data == envelope.to_bytes()


async def refused(errors: list[str], what: str) -> None:
    await wait_until(
        # nats-py reports the server's -ERR in lower case.
        lambda: any("permissions violation" in e and what.lower() in e for e in errors),
        timeout=5,
        message=f"the server did not refuse {what}",
    )


async def test_nobody_connects_without_a_user_or_with_a_wrong_password(bus: Bus) -> None:
    for url in (
        f"nats://127.0.0.1:{bus.port}",
        bus.users.url(bus.port, "tickets").replace(bus.users.passwords["tickets"], "guess"),
    ):
        with pytest.raises(Exception, match=r"[Aa]uthorization"):
            await nats.connect(
                url, allow_reconnect=False, connect_timeout=5, max_reconnect_attempts=0
            )


async def test_tickets_cannot_publish_charge_updated(connect: Connect) -> None:
    admin = await connect(ADMIN_USER)
    errors: list[str] = []
    tickets = await connect("tickets", errors)
    forged = charge_completed()
    with pytest.raises(Exception):  # noqa: B017 - nats-py has no one error type for "no answer"
        await tickets.jetstream().publish(
            forged.subject, forged.to_bytes(), stream=STREAM_NAME, timeout=REFUSED_WITHIN
        )
    await refused(errors, forged.subject)
    assert not await stored(admin, forged)

    # The same event from payments, whose event it is, is stored: the check above can fail.
    genuine = charge_completed()
    await Publisher((await connect("payments")).jetstream()).publish_envelope(genuine)
    assert await stored(admin, genuine)


@pytest.mark.parametrize(
    ("user", "event"),
    [
        # OrderExpired is expiration's, though its subject is under ticketing.order.
        ("orders", OrderExpired),
        ("payments", TicketUpdated),
        ("auth", OrderExpired),
    ],
)
async def test_a_service_cannot_publish_another_services_event(
    connect: Connect, user: str, event: type[OrderExpired | TicketUpdated]
) -> None:
    errors: list[str] = []
    nc = await connect(user, errors)
    await nc.publish(event.subject, b"{}")
    await nc.flush()
    await refused(errors, event.subject)


async def test_tickets_cannot_read_what_it_does_not_listen_to(connect: Connect) -> None:
    admin = await connect(ADMIN_USER)
    errors: list[str] = []
    tickets = await connect("tickets", errors)
    # A plain subscription to every event, or to charges: refused, and nothing arrives.
    seen: list[bytes] = []

    async def keep(message: Msg) -> None:
        seen.append(message.data)

    await tickets.subscribe("ticketing.>", cb=keep)
    await tickets.subscribe(ChargeUpdated.subject, cb=keep)
    await tickets.flush()
    await refused(errors, '"ticketing.>"')
    await refused(errors, f'"{ChargeUpdated.subject}"')
    await Publisher(admin.jetstream()).publish_envelope(charge_completed())
    await admin.flush()

    # A durable consumer of its own on charges: refused, whatever it is called.
    for name in ("tickets-charge-updated-v1", "tickets-order-created-v1"):
        with pytest.raises(Exception):  # noqa: B017 - refused requests time out
            await tickets.jetstream().add_consumer(
                STREAM_NAME,
                ConsumerConfig(
                    name=name,
                    durable_name=name,
                    ack_policy=AckPolicy.EXPLICIT,
                    filter_subject=ChargeUpdated.subject,
                ),
                timeout=REFUSED_WITHIN,
            )
    # Another service's replies (where orders' pulled events arrive): refused.
    await tickets.subscribe(f"{inbox_prefix('orders')}.>", cb=keep)
    await tickets.flush()
    await refused(errors, inbox_prefix("orders"))
    assert seen == []


async def test_every_service_can_do_its_own_work(connect: Connect) -> None:
    # Each service with its own user: the streams, its events (acknowledged by the stream), its
    # consumers (created, read, acknowledged), its dead letters. The e2e suites run it for real.
    admin = await connect(ADMIN_USER)
    for name, contract in CONTRACTS.items():
        errors: list[str] = []
        nc = await connect(name, errors)
        js = nc.jetstream()
        await ensure_stream(js)
        for event in contract.publishes:
            envelope = Envelope.wrap(event.model_construct())
            assert await Publisher(js).publish_envelope(envelope)
        for listener in contract.listeners:
            await _read_one(admin, nc, name, listener.durable_name(name), listener.event.subject)
        assert errors == [], f"{name}: {errors}"


async def _read_one(
    admin: NatsClient, nc: NatsClient, service: str, durable: str, subject: str
) -> None:
    await admin.jetstream().publish(subject, b"{}", stream=STREAM_NAME)
    config = ConsumerConfig(
        name=durable, durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject
    )
    js = nc.jetstream()
    await js.add_consumer(STREAM_NAME, config)
    subscription = await js.pull_subscribe(subject, durable=durable, stream=STREAM_NAME)
    messages = await subscription.fetch(1, timeout=5)
    await messages[0].ack_sync(timeout=5)
    info = await js.consumer_info(STREAM_NAME, durable)
    assert info.num_ack_pending == 0, f"{service}: {durable} did not take the ack"
    await js.publish(f"deadletter.{durable}", b"{}", stream="TICKETING_DLQ", timeout=5)


def test_every_event_is_published_by_exactly_its_service() -> None:
    users = {user.user: user for user in every_user(CONTRACTS.values())}
    for contract in CONTRACTS.values():
        for event in contract.publishes:
            allowed = [name for name, user in users.items() if event.subject in user.publish]
            assert allowed == [contract.name], event.subject
    # No service may publish or subscribe by wildcard, except its own acknowledgements and
    # its own inbox.
    for name in CONTRACTS:
        for subject in users[name].publish:
            assert ">" not in subject or subject.startswith(f"$JS.ACK.{STREAM_NAME}.{name}-")
        assert users[name].subscribe == (f"{inbox_prefix(name)}.>",)
