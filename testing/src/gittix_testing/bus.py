"""The test bus: a clean stream per test, and a recorder to wait for and assert published events."""

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.deadletter import StoredDeadLetter, dead_letters
from common.events import Envelope, Event, parse_envelope
from common.messaging import STREAM_NAME, Publisher, ensure_stream
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError, ServerError

from gittix_testing.waiting import wait_until

E = TypeVar("E", bound=Event)


@dataclass
class EventRecorder:
    """Every event the stream stored since the test began (duplicates dropped by the stream are
    not here, exactly as consumers would see it)."""

    received: list[tuple[Envelope, Event]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(self, msg: Msg) -> None:
        self.received.append(parse_envelope(msg.data))
        async with self._changed:
            self._changed.notify_all()

    def of_type(self, event_type: type[E], **match: Any) -> list[E]:
        return [
            event
            for _, event in self.received
            if isinstance(event, event_type)
            and all(getattr(event, key) == value for key, value in match.items())
        ]

    def envelopes(self, event_type: type[Event]) -> list[Envelope]:
        return [env for env, event in self.received if isinstance(event, event_type)]

    async def wait_for(
        self, event_type: type[E], *, count: int = 1, timeout: float = 10.0, **match: Any
    ) -> E:
        """Wait until `count` events of the type matching the fields have arrived; the last one."""

        async def arrived() -> E:
            async with self._changed:
                while len(self.of_type(event_type, **match)) < count:
                    await self._changed.wait()
                return self.of_type(event_type, **match)[count - 1]

        try:
            async with asyncio.timeout(timeout):
                return await arrived()
        except TimeoutError:
            seen = [env.type for env, _ in self.received]
            raise AssertionError(
                f"expected {count} {event_type.type_name()} matching {match} within {timeout}s; "
                f"saw {seen}"
            ) from None


@dataclass
class TestBus:
    """A connection to the test nats-server with a freshly created stream."""

    __test__ = False

    url: str
    nc: NatsClient
    js: JetStreamContext
    recorder: EventRecorder

    async def publish(self, event: Event) -> Envelope:
        """Publish as a service would (Nats-Msg-Id = event id, waiting for the ack)."""
        return await Publisher(self.js).publish(event)

    async def publish_envelope(self, envelope: Envelope) -> bool:
        return await Publisher(self.js).publish_envelope(envelope)

    async def publish_raw(self, subject: str, payload: bytes, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.js.publish(subject, payload, stream=STREAM_NAME, headers=headers)

    async def wait_for(self, event_type: type[E], **kwargs: Any) -> E:
        return await self.recorder.wait_for(event_type, **kwargs)

    def published(self, event_type: type[E], **match: Any) -> list[E]:
        return self.recorder.of_type(event_type, **match)

    async def consumer_info(self, durable: str) -> Any:
        return await self.js.consumer_info(STREAM_NAME, durable)

    async def wait_consumer_idle(self, durable: str, *, timeout: float = 10.0) -> None:
        """Wait until a durable consumer has nothing pending and nothing unacknowledged."""

        async def idle() -> bool:
            try:
                info = await self.consumer_info(durable)
                last = await self._last_sequence(info.config.filter_subject)
            except (NotFoundError, NatsTimeoutError):
                return False  # not created by the service yet, or the server is slow to answer
            # num_pending alone is not enough: the server counts a new message for a consumer a
            # moment after it acknowledged the publish (seen as 0 in 3 of 300 reads just after
            # one), so the consumer must also have been handed the last message on its subject.
            delivered = info.delivered.stream_seq or 0
            return bool(info.num_pending == 0 and info.num_ack_pending == 0 and delivered >= last)

        await wait_until(idle, timeout=timeout, message=f"consumer {durable} still busy")

    async def _last_sequence(self, subject: str | None) -> int:
        """The stream sequence of the last message on `subject` (any subject if None); 0 if none."""
        if not subject:
            return int((await self.js.stream_info(STREAM_NAME)).state.last_seq or 0)
        try:
            return int((await self.js.get_last_msg(STREAM_NAME, subject)).seq or 0)
        except NotFoundError:
            return 0

    async def dead_letters(self) -> list[StoredDeadLetter]:
        """Every record in the dead-letter stream, oldest first."""
        return [stored async for stored in dead_letters(self.js)]

    async def wait_redelivered(self, durable: str, *, timeout: float = 10.0) -> Any:
        """The durable consumer's info once it has had to deliver some message again."""

        async def redelivered() -> Any:
            info = await self.consumer_info(durable)
            return info if info.num_redelivered >= 1 else None

        return await wait_until(
            redelivered, timeout=timeout, message=f"{durable} never redelivered"
        )


async def subscribe_recorder(js: JetStreamContext, recorder: EventRecorder) -> Any:
    return await js.subscribe(
        "ticketing.>",
        stream=STREAM_NAME,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
        cb=recorder.on_message,
    )


async def recreate_streams(js: JetStreamContext, names: tuple[str, ...]) -> None:
    """Delete the streams, then create the system's stream anew and empty.

    nats-server removes a deleted stream's files in the background, so a stream created again at
    once under the same name can come back holding the old messages (seen on a busy machine in
    12 of 300 tries, as a foreign event in the next test). Start over until it is empty.
    """

    async def created_empty() -> bool:
        for name in names:
            try:
                await js.delete_stream(name)
            except NotFoundError:
                pass
        try:
            await ensure_stream(js)
        except ServerError:
            return False  # "error creating store for stream": the old files are still going
        state = (await js.stream_info(STREAM_NAME)).state
        return bool(state.messages == 0 and state.last_seq == 0)

    await wait_until(
        created_empty, timeout=30, interval=0.1, message=f"{STREAM_NAME} never came back empty"
    )
