"""Messaging on NATS JetStream: the stream, the publisher and the durable pull-listener base."""

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from common.events import Envelope, Event, EventParseError, parse_envelope

log = logging.getLogger("common.messaging")

STREAM_NAME = "TICKETING"
STREAM_SUBJECTS = ["ticketing.>"]
# How long JetStream remembers a Nats-Msg-Id to drop a republished duplicate.
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_config(*, replicas: int = 1, storage: StorageType = StorageType.FILE) -> StreamConfig:
    return StreamConfig(
        name=STREAM_NAME,
        subjects=STREAM_SUBJECTS,
        storage=storage,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
    )


async def ensure_stream(js: JetStreamContext, *, replicas: int = 1) -> None:
    """Create the system's stream, or bring an existing one up to this configuration."""
    config = stream_config(replicas=replicas)
    try:
        await js.stream_info(STREAM_NAME)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


async def connect_bus(url: str, *, name: str) -> tuple[NatsClient, JetStreamContext]:
    nc = await nats.connect(
        url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5
    )
    return nc, nc.jetstream()


class Publisher:
    """Publishes envelopes with Nats-Msg-Id = event id and waits for the stream's ack."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, event: Event) -> Envelope:
        envelope = Envelope.wrap(event)
        await self.publish_envelope(envelope)
        return envelope

    async def publish_envelope(self, envelope: Envelope) -> bool:
        """Publish; True when the stream stored it, False when it dropped it as a duplicate."""
        ack = await self._js.publish(
            envelope.subject,
            envelope.to_bytes(),
            stream=STREAM_NAME,
            headers={"Nats-Msg-Id": envelope.id},
            timeout=5,
        )
        return not ack.duplicate


# How long one fetch waits for messages; its pull request stays open on the server as long.
FETCH_SECONDS = 1.0


class RetryLater(Exception):
    """Raised by a handler when the event cannot be applied yet (e.g. its version is ahead)."""


E = TypeVar("E", bound=Event)
# The runtime a service's listeners get (not imported here: common.service imports this module).
RuntimeT = TypeVar("RuntimeT")


class Listener(ABC, Generic[E, RuntimeT]):
    """Handles one event type for one service through a durable pull consumer.

    `RuntimeT` is the service's runtime (a common.service.ServiceRuntime subclass), so a
    handler's `self.runtime.settings` and other fields are typed.

    The handler acks by returning; raises RetryLater for "not yet" (nak with delay); any other
    exception is retried with back-off. After `max_deliver` deliveries the message is
    terminated and a `dead-lettered` line is logged. Unparseable messages are `dropped`.
    """

    event: ClassVar[type[Event]]
    max_deliver: ClassVar[int] = 10
    ack_wait_seconds: ClassVar[float] = 30.0
    base_delay_seconds: ClassVar[float] = 0.2
    max_delay_seconds: ClassVar[float] = 5.0

    def __init__(self, runtime: RuntimeT) -> None:
        self.runtime = runtime

    @abstractmethod
    async def handle(self, event: E, envelope: Envelope) -> None: ...

    @classmethod
    def durable_name(cls, service: str) -> str:
        return f"{service}-" + cls.event.subject.removeprefix("ticketing.").replace(".", "-")

    def retry_delay(self, delivered: int) -> float:
        return min(self.base_delay_seconds * 2 ** max(delivered - 1, 0), self.max_delay_seconds)

    async def process(self, msg: Msg) -> str:
        """Handle one delivery; returns what happened: acked, retry, dropped or dead-lettered."""
        delivered = msg.metadata.num_delivered if msg.metadata else 1
        try:
            envelope, event = parse_envelope(msg.data)
            if not isinstance(event, self.event):
                raise EventParseError(f"{envelope.type} arrived on {msg.subject}")
        except EventParseError as error:
            log.error(
                "event dropped: cannot parse message on %s: %s",
                msg.subject,
                error,
                extra={"fields": {"subject": msg.subject, "outcome": "dropped"}},
            )
            await msg.term()
            return "dropped"
        try:
            await self.handle(event, envelope)  # type: ignore[arg-type]
        except Exception as error:
            if delivered >= self.max_deliver:
                log.error(
                    "event dead-lettered: %s %s failed %d times: %s",
                    envelope.type,
                    envelope.id,
                    delivered,
                    error,
                    extra={
                        "fields": {
                            "event_id": envelope.id,
                            "type": envelope.type,
                            "outcome": "dead-lettered",
                        }
                    },
                )
                await msg.term()
                return "dead-lettered"
            if not isinstance(error, RetryLater):
                log.exception("handler for %s %s failed; will retry", envelope.type, envelope.id)
            await msg.nak(delay=self.retry_delay(delivered))
            return "retry"
        await msg.ack()
        return "acked"


@dataclass
class ListenerRunner:
    """Runs a service's listeners, each on its own durable pull consumer, until stopped."""

    js: JetStreamContext
    service: str
    listeners: list[Listener[Any, Any]]
    batch: int = 10
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._stopping.clear()
        for listener in self.listeners:
            durable = listener.durable_name(self.service)
            subscription = await self.js.pull_subscribe(
                listener.event.subject,
                durable=durable,
                stream=STREAM_NAME,
                config=ConsumerConfig(
                    durable_name=durable,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    max_deliver=listener.max_deliver,
                    ack_wait=listener.ack_wait_seconds,
                    filter_subject=listener.event.subject,
                ),
            )
            self._tasks.append(asyncio.create_task(self._run(listener, subscription)))

    async def _run(self, listener: Listener[Any, Any], subscription: Any) -> None:
        loop = asyncio.get_running_loop()
        fetched_at = loop.time()
        while not self._stopping.is_set():
            try:
                # Not cut short on stop: messages fetched by a cancelled fetch would sit
                # unacknowledged until ack_wait; this way they are handled or given back now.
                fetched_at = loop.time()
                messages = await subscription.fetch(self.batch, timeout=FETCH_SECONDS)
            except TimeoutError:
                # An empty fetch: nats-py raises its own TimeoutError (a subclass) or the
                # builtin one from the underlying wait, depending on where the wait ran out.
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetching %s failed; retrying", listener.event.type_name())
                try:
                    async with asyncio.timeout(1):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
                continue
            for index, message in enumerate(messages):
                if self._stopping.is_set():
                    await _give_back(messages[index:])
                    break
                try:
                    await listener.process(message)
                except asyncio.CancelledError:
                    # Stopped mid-handle: nothing was acknowledged, so the message (and those
                    # behind it) is redelivered; handlers are idempotent and version-checked.
                    await _give_back(messages[index:])
                    raise
        await _give_back_late(subscription, until=fetched_at + FETCH_SECONDS)

    def stop_fetching(self) -> None:
        """Fetch nothing more; the messages in hand are still handled (see stop)."""
        self._stopping.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching and let each listener finish the message in hand for up to `grace` s.

        A listener still busy after that is cancelled and its messages are given back (nak), so
        another replica (or this one, restarted) handles them now rather than after ack_wait.
        """
        self._stopping.set()
        if self._tasks:
            _, busy = await asyncio.wait(self._tasks, timeout=grace)
            for task in busy:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def _give_back_late(subscription: Any, *, until: float) -> None:
    """Give back what the server still sends for the last pull request, until it expires.

    A fetch returns once it has some messages, but its pull request stays open on the server
    until its expiry and may bring more into the subscription's queue; unhandled, they would
    wait for ack_wait before anyone else got them.
    """
    wait = until - asyncio.get_running_loop().time()
    if wait > 0:
        await asyncio.sleep(wait)
    arrived = subscription.pending_msgs
    if not arrived:
        return
    try:
        # One more than queued: the fetch takes the queue first and asks the server without
        # waiting for at most one more, so no new pull request is left open behind it.
        late = await subscription.fetch(arrived + 1, timeout=0.5)
    except Exception:
        log.warning("could not give back %d message(s); redelivered after ack_wait", arrived)
        return
    await _give_back(late)


async def _give_back(messages: list[Msg]) -> None:
    """Nak messages this replica will not handle; a failure leaves them to ack_wait instead."""
    try:
        async with asyncio.timeout(1):
            for message in messages:
                await message.nak()
    except Exception:
        log.warning("could not give back %d message(s); redelivered after ack_wait", len(messages))
