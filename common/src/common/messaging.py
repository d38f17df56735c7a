"""Messaging on NATS JetStream: the stream, the publisher and the durable pull-listener base."""

import asyncio
import json
import logging
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, NotFoundError
from opentelemetry.trace import SpanKind

from common import telemetry
from common.deadletter import (
    DeadLetter,
    Reason,
    dead_letter_stream_config,
    publish_dead_letter,
)
from common.events import SUBJECT_PREFIX, Envelope, Event, EventParseError, parse_envelope
from common.failures import FailureLedger
from common.logging import bind, event_fields, log_context
from common.metrics import EVENT_HANDLING_DURATION, EVENTS_HANDLED, EVENTS_PUBLISHED

log = logging.getLogger("common.messaging")

# Consumer outcomes as the metric's label: a failure that will be retried is "retried", and an
# unparseable message is dead-lettered like any other.
_OUTCOME_LABELS = {
    "acked": "acked",
    "waiting": "waiting",
    "failed": "retried",
    "dead_lettered": "dead_lettered",
    "unparseable": "dead_lettered",
    "kept": "kept",
}

STREAM_NAME = "TICKETING"
STREAM_SUBJECTS = [f"{SUBJECT_PREFIX}.>"]


@dataclass(frozen=True)
class StreamLimits:
    """How much the event stream keeps; sized in docs/architecture.md ("Stream limits")."""

    max_age_seconds: float = 7 * 24 * 3600.0
    max_bytes: int = 5 * 1024**3
    # How long JetStream remembers a Nats-Msg-Id to drop a republished duplicate: longer than
    # the longest gap between an outbox entry's first publish and its republish.
    duplicate_window_seconds: float = 600.0
    dead_letter_max_bytes: int = 512 * 1024**2


def stream_config(
    *,
    replicas: int = 1,
    storage: StorageType = StorageType.FILE,
    limits: StreamLimits = StreamLimits(),
) -> StreamConfig:
    return StreamConfig(
        name=STREAM_NAME,
        subjects=STREAM_SUBJECTS,
        storage=storage,
        num_replicas=replicas,
        duplicate_window=limits.duplicate_window_seconds,
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        # When full, refuse new events rather than delete old ones: a refused publish stays in
        # its outbox and goes out once there is room, while a deleted event would be lost for
        # good to every consumer that had not read it yet.
        discard=DiscardPolicy.NEW,
    )


async def ensure_stream(
    js: JetStreamContext, *, replicas: int = 1, limits: StreamLimits = StreamLimits()
) -> None:
    """Create the system's streams (events and dead letters), or bring existing ones up to
    this configuration."""
    configs = [
        stream_config(replicas=replicas, limits=limits),
        dead_letter_stream_config(max_bytes=limits.dead_letter_max_bytes, replicas=replicas),
    ]
    for config in configs:
        assert config.name is not None
        try:
            await js.stream_info(config.name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)


def inbox_prefix(service: str) -> str:
    """Where `service`'s replies and pulled messages arrive: a prefix of its own, so its NATS
    user may subscribe there and nowhere else (common.bus_permissions)."""
    return f"_INBOX_{service}"


# What to call once a connection made by connect_bus is back after losing the server: each
# listener's PullInbox asks anew, since a restarted server has forgotten the pull requests.
_RECONNECTED: "weakref.WeakKeyDictionary[NatsClient, list[Callable[[], None]]]" = (
    weakref.WeakKeyDictionary()
)


async def connect_bus(url: str, *, name: str) -> tuple[NatsClient, JetStreamContext]:
    """Connect as service `name`; `url` may carry its NATS user and password (user:pass@)."""
    hooks: list[Callable[[], None]] = []

    async def reconnected() -> None:
        # Called by nats-py once the subscriptions are back on the server.
        for hook in list(hooks):
            hook()

    nc = await nats.connect(
        url,
        name=name,
        inbox_prefix=inbox_prefix(name),
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        reconnected_cb=reconnected,
    )
    _RECONNECTED[nc] = hooks
    return nc, nc.jetstream()


def on_reconnect(nc: NatsClient, hook: Callable[[], None]) -> Callable[[], None]:
    """Call `hook` each time `nc` (made by connect_bus) has reconnected; returns what stops it.
    A connection made otherwise has no such hook: nothing is called."""
    hooks = _RECONNECTED.get(nc)
    if hooks is None:
        return lambda: None
    hooks.append(hook)
    return lambda: hooks.remove(hook) if hook in hooks else None


class Publisher:
    """Publishes envelopes with Nats-Msg-Id = event id and waits for the stream's ack."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    async def publish(self, event: Event) -> Envelope:
        envelope = Envelope.wrap(event)
        await self.publish_envelope(envelope)
        return envelope

    async def publish_envelope(
        self, envelope: Envelope, *, trace_context: Mapping[str, str] | None = None
    ) -> bool:
        """Publish; True when the stream stored it, False when it dropped it as a duplicate.

        The publish is a span in `trace_context` (the outbox entry's stored context) or else
        the current trace, and its context goes in the W3C headers for the listeners.
        """
        with telemetry.span(
            f"publish {envelope.subject}",
            kind=SpanKind.PRODUCER,
            parent=trace_context,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": envelope.subject,
                "messaging.message.id": envelope.id,
                "gittix.event.type": envelope.type,
            },
        ):
            headers = {"Nats-Msg-Id": envelope.id, **telemetry.current_carrier()}
            try:
                ack = await self._js.publish(
                    envelope.subject,
                    envelope.to_bytes(),
                    stream=STREAM_NAME,
                    headers=headers,
                    timeout=5,
                )
            except Exception:
                EVENTS_PUBLISHED.labels(envelope.type, "failed").inc()
                raise
        EVENTS_PUBLISHED.labels(envelope.type, "duplicate" if ack.duplicate else "stored").inc()
        return not ack.duplicate


class RetryLater(Exception):
    """Raised by a handler when the event cannot be applied yet (e.g. its version is ahead).

    Its message says what the event waits for ("ticket 42 v3 not applicable: ahead"); it is
    shown in the warning logged when the wait grows long. Waiting is never counted as a failure.
    """


E = TypeVar("E", bound=Event)
# The runtime a service's listeners get (not imported here: common.service imports this module).
RuntimeT = TypeVar("RuntimeT")


class Listener(ABC, Generic[E, RuntimeT]):
    """Handles one event type for one service through a durable pull consumer.

    `RuntimeT` is the service's runtime (a common.service.ServiceRuntime subclass), so a
    handler's `self.runtime.settings` and other fields are typed.

    The handler acks by returning; raises RetryLater for "not yet" (redelivered with a capped
    back-off for as long as it takes); any other exception is a failure, retried with back-off
    until the consumer's failure budget is spent, then dead-lettered (see Consumer).
    """

    event: ClassVar[type[Event]]

    def __init__(self, runtime: RuntimeT) -> None:
        self.runtime = runtime

    @abstractmethod
    async def handle(self, event: E, envelope: Envelope) -> None: ...

    @classmethod
    def durable_name(cls, service: str) -> str:
        token = cls.event.subject.removeprefix(f"{SUBJECT_PREFIX}.")
        return f"{service}-" + token.replace(".", "-")


@dataclass(frozen=True)
class ConsumerPolicy:
    """How a consumer retries, gives up and reports; built from the service's BusSettings."""

    failure_budget: int = 10
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 5.0
    wait_warning_seconds: float = 300.0
    stall_seconds: float = 30.0
    ack_wait_seconds: float = 30.0
    # How long one fetch waits for messages; its pull request stays open on the server as long
    # (see PullInbox). Each expiry of an idle consumer's request wakes the service and NATS.
    fetch_seconds: float = 10.0
    # A listener loop that died is restarted after a back-off from 0.5 s up to this.
    restart_max_seconds: float = 30.0

    def retry_delay(self, attempt: int) -> float:
        """The redelivery delay after the `attempt`-th failure or wait (1, 2, ...)."""
        exponent = min(max(attempt - 1, 0), 30)  # past any cap long before 2**30
        return min(self.retry_base_seconds * 2**exponent, self.retry_max_seconds)

    @property
    def handle_timeout_seconds(self) -> float:
        # Cut a handler short before JetStream gives the message to someone else anyway.
        return self.ack_wait_seconds * 0.8


@dataclass
class ConsumerStats:
    """Plain counters for one consumer, kept by the process that runs it (a metrics exporter
    reads them as they are: every field only grows, except the two clocks)."""

    acked: int = 0
    # RetryLater: redelivered later, not a failure.
    waiting: int = 0
    # A waiting event reported as waiting longer than the warning threshold.
    long_waits: int = 0
    # A real error, retried.
    failed: int = 0
    dead_lettered: int = 0
    unparseable: int = 0
    # The listener loop died and was restarted.
    restarts: int = 0
    # Monotonic clock: the last completed fetch or finished message (readiness reads it).
    last_progress: float = field(default_factory=time.monotonic)


class Consumer:
    """One listener on its durable consumer: what to do with each delivery.

    - handled: ack (and forget any failures counted for it);
    - RetryLater: nak with a capped back-off, forever; a warning every `wait_warning_seconds`
      while the event is older than that;
    - another error: counted in the service's FailureLedger (not JetStream's delivery count,
      which waiting inflates); nak with back-off until `failure_budget` errors, then the message
      is written to the dead-letter stream and only then terminated;
    - unparseable (or the wrong type on the subject): dead-lettered at once.
    """

    def __init__(
        self,
        listener: Listener[Any, Any],
        *,
        js: JetStreamContext,
        service: str,
        policy: ConsumerPolicy,
        ledger: FailureLedger,
    ) -> None:
        self.listener = listener
        self.durable = listener.durable_name(service)
        self.subject = listener.event.subject
        self.stats = ConsumerStats()
        self._js = js
        self._service = service
        self._policy = policy
        self._ledger = ledger
        # Stream sequence → when this process last warned that the event waits too long.
        self._warned: dict[int, float] = {}
        # The metric series this consumer writes, looked up once rather than per delivery.
        self._duration = EVENT_HANDLING_DURATION.labels(self.durable)
        self._handled = {
            outcome: EVENTS_HANDLED.labels(self.durable, listener.event.type_name(), label)
            for outcome, label in _OUTCOME_LABELS.items()
        }

    def progressed(self) -> None:
        self.stats.last_progress = time.monotonic()

    def idle_seconds(self) -> float:
        return time.monotonic() - self.stats.last_progress

    async def process(self, msg: Msg) -> str:
        """Handle one delivery; returns the outcome: acked, waiting, failed, dead_lettered,
        unparseable, or kept (the dead-letter stream refused the record; retried later).

        The handling is a consumer span, child of the publish span whose context came in the
        headers, and every line logged inside it carries the event's and its entities' ids.
        """
        headers = msg.headers or {}
        started = time.perf_counter()
        with (
            log_context(event_id=headers.get("Nats-Msg-Id"), consumer=self.durable),
            telemetry.span(
                f"process {self.subject}",
                kind=SpanKind.CONSUMER,
                parent=headers,
                attributes={
                    "messaging.system": "nats",
                    "messaging.destination.name": self.subject,
                    "messaging.consumer.group.name": self.durable,
                    "messaging.message.id": headers.get("Nats-Msg-Id", ""),
                },
            ) as current,
        ):
            outcome = await self._process(msg)
            current.set_attribute("gittix.outcome", outcome)
            if outcome not in ("acked", "waiting"):
                telemetry.mark_error(current, outcome)
        self._duration.observe(time.perf_counter() - started)
        self._handled[outcome].inc()
        return outcome

    async def _process(self, msg: Msg) -> str:
        metadata = msg.metadata
        delivered, sequence = metadata.num_delivered, metadata.sequence.stream
        try:
            envelope, event = parse_envelope(msg.data)
            if not isinstance(event, self.listener.event):
                raise EventParseError(f"{envelope.type} arrived on {msg.subject}")
        except EventParseError as error:
            return await self._dead_letter(msg, reason="unparseable", failures=0, error=str(error))
        bind(**event_fields(envelope.type, envelope.data))
        deadline = asyncio.timeout(self._policy.handle_timeout_seconds)
        try:
            async with deadline:
                await self.listener.handle(event, envelope)
        except RetryLater as wait:
            self._report_long_wait(msg, envelope, wait)
            await msg.nak(delay=self._policy.retry_delay(delivered))
            self.stats.waiting += 1
            return "waiting"
        except Exception as error:
            return await self._failed(msg, envelope, error, cut_short=deadline.expired())
        await msg.ack()
        self.stats.acked += 1
        if delivered > 1:
            self._warned.pop(sequence, None)
            await self._forget(metadata.stream, sequence)
        return "acked"

    async def _failed(
        self, msg: Msg, envelope: Envelope, error: Exception, *, cut_short: bool
    ) -> str:
        metadata = msg.metadata
        text = (
            f"the handler took longer than {self._policy.handle_timeout_seconds:g} s"
            if cut_short
            else f"{type(error).__name__}: {error}"
        )
        try:
            failures = await self._ledger.record(
                consumer=self.durable,
                stream=metadata.stream,
                sequence=metadata.sequence.stream,
                error=text,
            )
        except Exception:
            # The service's own database is out of reach (most likely what made the handler
            # fail too): an outage is waited out, never counted towards a dead letter.
            log.exception(
                "handler for %s %s failed and the failure could not be counted; will retry",
                envelope.type,
                envelope.id,
            )
            await msg.nak(delay=self._policy.retry_max_seconds)
            self.stats.failed += 1
            return "failed"
        if failures >= self._policy.failure_budget:
            return await self._dead_letter(
                msg, reason="failed", failures=failures, error=text, envelope=envelope
            )
        log.warning(
            "handler for %s %s failed (%d of %d before dead-lettering): %s; will retry",
            envelope.type,
            envelope.id,
            failures,
            self._policy.failure_budget,
            text,
            exc_info=error,
            extra={"fields": {"event_id": envelope.id, "type": envelope.type, "outcome": "failed"}},
        )
        await msg.nak(delay=self._policy.retry_delay(failures))
        self.stats.failed += 1
        return "failed"

    async def _dead_letter(
        self,
        msg: Msg,
        *,
        reason: Reason,
        failures: int,
        error: str,
        envelope: Envelope | None = None,
    ) -> str:
        record = DeadLetter.from_message(
            msg,
            service=self._service,
            reason=reason,
            failures=failures,
            error=error,
            event_type=envelope.type if envelope else "",
            event_id=envelope.id if envelope else "",
        )
        try:
            await publish_dead_letter(self._js, record)
        except Exception:
            log.exception(
                "could not write %s %s to the dead-letter stream; it stays in %s and is retried",
                record.event_type or "message",
                record.event_id or record.stream_sequence,
                self.durable,
            )
            await msg.nak(delay=self._policy.retry_max_seconds)
            return "kept"
        log.error(
            "event dead-lettered: %s %s on %s (%s, %d deliveries, %d failures): %s",
            record.event_type or "message",
            record.event_id or f"#{record.stream_sequence}",
            self.durable,
            reason,
            record.delivered,
            failures,
            error,
            extra={
                "fields": {
                    "event_id": record.event_id,
                    "type": record.event_type,
                    "consumer": self.durable,
                    "outcome": "dead-lettered",
                }
            },
        )
        await msg.term()
        if reason == "unparseable":
            self.stats.unparseable += 1
        else:
            self.stats.dead_lettered += 1
        self._warned.pop(record.stream_sequence, None)
        if failures:
            await self._forget(record.stream, record.stream_sequence)
        return "unparseable" if reason == "unparseable" else "dead_lettered"

    async def _forget(self, stream: str, sequence: int) -> None:
        try:
            await self._ledger.clear(consumer=self.durable, stream=stream, sequence=sequence)
        except Exception:
            log.warning("could not clear the failure count of %s #%d", self.durable, sequence)

    def _report_long_wait(self, msg: Msg, envelope: Envelope, wait: RetryLater) -> None:
        threshold = self._policy.wait_warning_seconds
        published = msg.metadata.timestamp
        waited = time.time() - published.timestamp()
        if waited < threshold:
            return
        sequence = msg.metadata.sequence.stream
        now = time.monotonic()
        last = self._warned.get(sequence)
        if last is not None and now - last < threshold:
            return
        self._warned[sequence] = now
        # Forget warnings about events other replicas have since handled.
        for stale in [seq for seq, at in self._warned.items() if now - at > 2 * threshold]:
            del self._warned[stale]
        self.stats.long_waits += 1
        log.warning(
            "event waiting long: %s %s on %s has waited %.1f s (since it was published at %s) "
            "for: %s; delivered %d times, still retried",
            envelope.type,
            envelope.id,
            self.durable,
            waited,
            published.isoformat(),
            wait,
            msg.metadata.num_delivered,
            extra={
                "fields": {
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "consumer": self.durable,
                    "outcome": "waiting",
                    "waited_seconds": round(waited, 1),
                }
            },
        )


@dataclass
class ListenerRunner:
    """Runs a service's listeners, each on its own durable pull consumer, until stopped.

    Each listener loop is supervised: if it dies (anything raised outside a handler, such as an
    ack that fails), it is logged and started again, with a new subscription, after a back-off.
    `stalled()` names the consumers that have made no progress for `policy.stall_seconds`
    (readiness), and `lag()` reads each consumer's pending and redelivered counts from NATS.
    """

    js: JetStreamContext
    service: str
    listeners: list[Listener[Any, Any]]
    # Where real handler errors are counted: the service's own database (see common.failures).
    ledger: FailureLedger
    policy: ConsumerPolicy = field(default_factory=ConsumerPolicy)
    batch: int = 10
    consumers: list[Consumer] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _inboxes: list["PullInbox"] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._stopping.clear()
        self.consumers = [
            Consumer(
                listener, js=self.js, service=self.service, policy=self.policy, ledger=self.ledger
            )
            for listener in self.listeners
        ]
        self._inboxes.clear()
        for consumer in self.consumers:
            subscription = await self._subscribe(consumer)
            self._tasks.append(asyncio.create_task(self._supervise(consumer, subscription)))

    async def _subscribe(self, consumer: Consumer) -> Any:
        config = ConsumerConfig(
            # Named as well: created through CONSUMER.CREATE.<stream>.<name>.<filter>, the one
            # subject the service's NATS user is allowed for it, so a service can only ever have
            # its own consumers with its own filters (common.bus_permissions).
            name=consumer.durable,
            durable_name=consumer.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # Unlimited: waiting (RetryLater) redelivers for as long as it takes, and real
            # errors are counted apart, in the FailureLedger, against policy.failure_budget.
            max_deliver=-1,
            ack_wait=self.policy.ack_wait_seconds,
            filter_subject=consumer.subject,
        )
        # Create or update: pull_subscribe alone keeps an existing durable's old settings (one
        # left by an earlier version with max_deliver=10 would go on giving up).
        await self.js.add_consumer(STREAM_NAME, config=config)
        pulls = PullInbox(self.js, consumer.durable)
        await pulls.subscribe()
        self._inboxes = [inbox for inbox in self._inboxes if inbox.durable != consumer.durable]
        self._inboxes.append(pulls)
        if self._stopping.is_set():
            pulls.stop_waiting()
        return pulls

    async def _supervise(self, consumer: Consumer, subscription: Any) -> None:
        """Run the consumer's loop until stopped; restart it whenever it dies."""
        failures_in_a_row = 0
        while True:
            started = time.monotonic()
            try:
                if subscription is None:
                    subscription = await self._subscribe(consumer)
                await self._run(consumer, subscription)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                if time.monotonic() - started > self.policy.stall_seconds:
                    failures_in_a_row = 0  # it ran fine for a while: start the back-off over
                failures_in_a_row += 1
                consumer.stats.restarts += 1
                delay = min(
                    0.5 * 2 ** min(failures_in_a_row - 1, 10), self.policy.restart_max_seconds
                )
                log.exception(
                    "listener %s died; restarting it in %.1f s",
                    consumer.durable,
                    delay,
                    extra={"fields": {"consumer": consumer.durable, "outcome": "restarted"}},
                )
                if subscription is not None:
                    # The dead loop's inbox (its durable consumer stays on the server): what it
                    # held and what its open request brought are given back.
                    await subscription.close()
                subscription = None
                try:
                    async with asyncio.timeout(delay):
                        await self._stopping.wait()
                except TimeoutError:
                    continue
                return

    def stalled(self) -> list[str]:
        """Consumers with no completed fetch and no finished message for `stall_seconds`."""
        return [
            consumer.durable
            for consumer in self.consumers
            if consumer.idle_seconds() > self.policy.stall_seconds
        ]

    async def lag(self) -> list[dict[str, Any]]:
        """Each consumer as NATS and this process see it: what is left to do, and the counters."""
        report = []
        for consumer in self.consumers:
            entry: dict[str, Any] = {
                "consumer": consumer.durable,
                "subject": consumer.subject,
                "idle_seconds": round(consumer.idle_seconds(), 3),
                "stalled": consumer.idle_seconds() > self.policy.stall_seconds,
                "counters": {
                    name: value
                    for name, value in vars(consumer.stats).items()
                    if name != "last_progress"
                },
            }
            try:
                info = await self.js.consumer_info(STREAM_NAME, consumer.durable, timeout=2)
            except Exception as error:
                entry["error"] = f"{type(error).__name__}: {error}"
            else:
                entry |= {
                    "pending": info.num_pending,
                    "ack_pending": info.num_ack_pending,
                    "redelivered": info.num_redelivered,
                    "waiting_pulls": info.num_waiting,
                }
            report.append(entry)
        return report

    async def _run(self, consumer: Consumer, subscription: Any) -> None:
        failing_since: float | None = None
        while not self._stopping.is_set():
            try:
                # Not cut short on stop: messages fetched by a cancelled fetch would sit
                # unacknowledged until ack_wait; this way they are handled or given back now.
                messages = await subscription.fetch(self.batch, timeout=self.policy.fetch_seconds)
            except TimeoutError:
                consumer.progressed()  # an empty fetch
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("fetching %s failed; retrying", consumer.durable)
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > self.policy.stall_seconds:
                    # Not a passing outage (the client reconnects by itself for those): the
                    # subscription or the durable itself is gone. Dying makes the supervisor
                    # subscribe again, which creates the durable anew if it has to.
                    raise RuntimeError(
                        f"fetching has failed for {self.policy.stall_seconds} s"
                    ) from error
                try:
                    async with asyncio.timeout(1):
                        await self._stopping.wait()
                except TimeoutError:
                    pass
                continue
            failing_since = None
            consumer.progressed()
            for index, message in enumerate(messages):
                if self._stopping.is_set():
                    subscription.hold(messages[index:])
                    break
                try:
                    await consumer.process(message)
                except asyncio.CancelledError:
                    # Stopped mid-handle: nothing was acknowledged, so the message (and those
                    # behind it) is redelivered; handlers are idempotent and version-checked.
                    # stop() gives them back once the open request has ended.
                    subscription.hold(messages[index:])
                    raise
                except Exception:
                    # An ack, nak or term that failed: the loop dies and is restarted (see
                    # _supervise), which gives back what it held if it can.
                    subscription.hold(messages[index:])
                    raise
                consumer.progressed()
        await subscription.close()

    def stop_fetching(self) -> None:
        """Fetch nothing more; the messages in hand are still handled (see stop)."""
        self._stopping.set()
        for inbox in self._inboxes:
            inbox.stop_waiting()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop fetching and let each listener finish the message in hand for up to `grace` s.

        A listener still busy after that is cancelled and its messages are given back (nak), so
        another replica (or this one, restarted) handles them now rather than after ack_wait.
        """
        self.stop_fetching()
        if self._tasks:
            _, busy = await asyncio.wait(self._tasks, timeout=grace)
            for task in busy:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            # A loop cut short did not close its inbox: what it held goes back now.
            await asyncio.gather(
                *(inbox.close() for inbox in self._inboxes), return_exceptions=True
            )
        self._tasks.clear()


# The server ends a pull request this much before the fetch stops waiting for it, so the status
# that ends it is normally in hand before the fetch gives up.
_EXPIRY_MARGIN_SECONDS = 0.1
# Status codes that end a pull request in the ordinary way: no messages (left), expired. Any
# other (409: consumer deleted, leadership change, ...) fails a fetch that brought nothing, so
# the listener loop reports it and, if it lasts, subscribes again (see ListenerRunner._run).
_REQUEST_ENDED = {"404", "408"}
_HEARTBEAT = "100"
# The 409 a server stopping in order sends for each open request: not a failure. The next
# request waits for the reconnect (or the fetch's timeout), never a loop of requests and 409s.
_SERVER_SHUTDOWN = "Server Shutdown"
# How long closing an inbox waits for the server's answer to its round trip.
_CLOSE_SECONDS = 2.0


class PullInbox:
    """A durable consumer's pull requests, one open at a time, on an inbox of the listener's own.

    A request asks for up to `batch` messages and expires at the fetch timeout: the server
    delivers pending messages at once and later ones as they come, until the request has
    brought `batch` (it then ends without a word) or expires (a 408 status). A fetch returns as
    soon as at least one message is in hand, and the request stays open for the next fetch, so
    a steady flow costs one request per `batch` messages (or per timeout), not one per message,
    and an idle consumer one per timeout. Messages arrive through a subscription callback into a
    queue of this inbox's own; a fetch waits on it without a task per message.

    Every request has a reply subject of its own (`<inbox>.<n>`), so a status about an older
    request (one given up on at its timeout, whose status arrived late) is never taken for the
    end of the open one. nats-py's `fetch` could: it took a late 408 for the end of its no-wait
    probe, then sent a plain lingering request, and a message that came on that one was held
    until the request filled or expired (up to the whole fetch timeout: the event hop's tail of
    hundreds of milliseconds, issue 12).

    A long timeout costs nothing on stop or after an outage: `close` ends the open request at
    once (the inbox's interest is withdrawn, and the server delivers nothing to a subject nobody
    listens to), and on a connection made by `connect_bus` a reconnect makes the next fetch ask
    anew (a restarted server has forgotten the requests it held).
    """

    def __init__(self, js: JetStreamContext, durable: str) -> None:
        # The context's own connection and API prefix: nats-py has no public accessor for them.
        self._nc: NatsClient = js._nc
        self._next_subject = f"{js._prefix}.CONSUMER.MSG.NEXT.{STREAM_NAME}.{durable}"
        self.durable = durable
        self.inbox = self._nc.new_inbox()
        self._subscription: Any = None
        self._arrived: deque[Msg] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._requests = 0
        # The open request: its reply subject, how many messages it may still bring, and the
        # loop time until which it may (0: no request is open).
        self._reply = ""
        self._left = 0
        self._open_until = 0.0
        self._stopped = False
        self._closed = False
        # The server said it was shutting down: ask again only after a reconnect or a new fetch.
        self._server_gone = False
        self._held: list[Msg] = []
        self._forget_reconnect: Callable[[], None] = lambda: None

    async def subscribe(self) -> None:
        self._subscription = await self._nc.subscribe(f"{self.inbox}.*", cb=self._deliver)
        self._forget_reconnect = on_reconnect(self._nc, self._reconnected)

    async def _deliver(self, msg: Msg) -> None:
        self._arrived.append(msg)
        self._wake()

    def _reconnected(self) -> None:
        """The server may have forgotten the open request: the fetch asks again now."""
        self._server_gone = False
        self._ended()
        self._wake()

    def _ended(self) -> None:
        self._open_until = 0.0

    def _take(self) -> list[Msg]:
        """The messages arrived so far, in order. A status ending the open request closes it;
        one ending it abnormally (409: consumer deleted, ...) fails a take that has no message."""
        messages: list[Msg] = []
        failure: Msg | None = None
        while self._arrived:
            msg = self._arrived.popleft()
            status = _status(msg)
            if not status:
                messages.append(msg)
                self._left -= 1
                if self._left <= 0:
                    self._ended()  # served in full: the server has dropped the request
            elif msg.subject == self._reply and status != _HEARTBEAT:
                self._ended()
                if _description(msg) == _SERVER_SHUTDOWN:
                    self._server_gone = True
                elif status not in _REQUEST_ENDED:
                    failure = msg
        if failure is not None and not messages:
            raise APIError.from_msg(failure)
        return messages

    async def _request(self, batch: int, timeout: float, now: float) -> None:
        self._requests += 1
        self._reply = f"{self.inbox}.{self._requests}"
        self._left = batch
        self._open_until = now + timeout
        expires = max(timeout - _EXPIRY_MARGIN_SECONDS, timeout / 2)
        request = {"batch": batch, "expires": int(expires * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=self._reply)

    async def fetch(self, batch: int, *, timeout: float) -> list[Msg]:
        """Up to `batch` messages, as soon as there is at least one; TimeoutError when none
        came within `timeout` seconds."""
        self._server_gone = False
        messages = self._take()
        if messages:
            return messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = loop.time()
            if now >= deadline or self._stopped:
                raise TimeoutError
            if self._open_until <= now and not self._server_gone:
                await self._request(batch, timeout, now)
            self._waiter = loop.create_future()
            until = deadline if self._server_gone else min(deadline, self._open_until)
            try:
                async with asyncio.timeout_at(until):
                    await self._waiter
            except TimeoutError:
                pass
            finally:
                self._waiter = None
            messages = self._take()
            if messages:
                return messages
            if self._stopped:
                raise TimeoutError

    def stop_waiting(self) -> None:
        """End a waiting fetch now (as if it timed out) and every later one at once: the
        listener is stopping. What the open request still brings is given back by close."""
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def hold(self, messages: list[Msg]) -> None:
        """Messages fetched but not handled (the listener is stopping or died): close gives
        them back."""
        self._held.extend(messages)

    async def close(self) -> None:
        """Fetch no more, end the open request now and give back (nak) the messages held and
        everything the request brought, so another replica gets them at once rather than after
        ack_wait. Called again, it gives back what has been held since.

        The inbox's interest is withdrawn and a round trip to the server follows: whatever the
        server sent before it took the withdrawal is then in hand (nats-py's drain), and after
        it the server sends nothing more (a pull request whose reply subject nobody listens to
        is dropped, its messages left for other requests).
        """
        self.stop_waiting()
        if not self._closed and self._subscription is not None:
            self._closed = True
            self._forget_reconnect()
            try:
                async with asyncio.timeout(_CLOSE_SECONDS):
                    await self._subscription.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The bus is out of reach: nothing more can arrive; what was in flight is
                # redelivered after ack_wait.
                log.warning("could not end %s's pull request", self.durable, exc_info=True)
        self._ended()
        late, self._held = self._held, []
        await _give_back(late + self.take_queued())

    def take_queued(self) -> list[Msg]:
        """The messages in hand that no fetch has returned yet (statuses dropped)."""
        try:
            return self._take()
        except APIError:
            return []


def _description(msg: Msg) -> str:
    return (msg.headers or {}).get("Description") or ""


def _status(msg: Msg) -> str | None:
    """The status of a message the server sent about a pull request; None for a stream message
    (which always carries its ack subject as reply)."""
    if msg.reply:
        return None
    return (msg.headers or {}).get("Status") or "unknown"


async def _give_back(messages: list[Msg]) -> None:
    """Nak messages this replica will not handle; a failure leaves them to ack_wait instead."""
    try:
        async with asyncio.timeout(1):
            for message in messages:
                await message.nak()
    except Exception:
        log.warning("could not give back %d message(s); redelivered after ack_wait", len(messages))
