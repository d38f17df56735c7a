"""The transactional outbox: pending events live inside the changed document until published.

A repository writes through an `Outbox`, which appends the events' entries in the same
single-document write that changes the state and version (so a crash can never split the two)
and then wakes the relay (so nobody has to remember to). The relay publishes each pending entry
with Nats-Msg-Id = event id (so a second publish is dropped by the stream) and then pulls it.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pymongo.results import UpdateResult

from common.events import Envelope, Event
from common.messaging import Publisher
from common.mongo import Collection, Document
from common.telemetry import TRACE_FIELD, current_carrier

log = logging.getLogger("common.outbox")

OUTBOX_FIELD = "outbox"


def outbox_entry(event: Event) -> dict[str, Any]:
    """The stored form of a pending event: its whole envelope, and the trace context it was
    written in (when tracing is on), so whichever pass publishes it continues that trace."""
    entry = Envelope.wrap(event).model_dump(mode="json")
    carrier = current_carrier()
    if carrier:
        entry[TRACE_FIELD] = carrier
    return entry


class OutboxRelay:
    """Publishes pending outbox entries of the given collections, oldest first per document."""

    def __init__(
        self, collections: list[Collection], publisher: Publisher, *, poll_seconds: float = 1.0
    ) -> None:
        self._collections = collections
        self._publisher = publisher
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self) -> None:
        """Say a document just got a pending event, so it goes out now rather than at the poll."""
        self._wake.set()

    async def relay_once(self) -> int:
        """Publish everything pending now; returns how many entries were published."""
        published = 0
        for collection in self._collections:
            cursor = collection.find({f"{OUTBOX_FIELD}.0": {"$exists": True}}, {OUTBOX_FIELD: 1})
            async for document in cursor:
                for entry in document.get(OUTBOX_FIELD, []):
                    stored = dict(entry)
                    trace_context = stored.pop(TRACE_FIELD, None)
                    envelope = Envelope.model_validate(stored)
                    await self._publisher.publish_envelope(envelope, trace_context=trace_context)
                    await collection.update_one(
                        {"_id": document["_id"]}, {"$pull": {OUTBOX_FIELD: {"id": envelope.id}}}
                    )
                    published += 1
        return published

    async def _run(self) -> None:
        while True:
            # Read before the pass: a stop asked for during it gets one more pass, which sees
            # what the last requests and events wrote.
            last = self._stopping
            self._wake.clear()
            try:
                await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; pending events stay until the next pass")
            if last:
                return
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # races with the event being set, and the relay would never stop.
            try:
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, grace: float = 5.0) -> None:
        """Publish what is pending in one last pass, for up to `grace` seconds, then stop.

        A pass cut short leaves its entries in their documents: the next start publishes them
        (an entry published but not yet pulled goes again, and the stream drops the duplicate).
        """
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            _, busy = await asyncio.wait([self._task], timeout=grace)
            for task in busy:
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None


class Outbox:
    """The only way a service writes a document together with the events it announces.

    Each write puts the events' entries into the document's outbox in the same single-document
    write, then wakes the relay attached to it. `publishes` (the service contract's) refuses an
    event the service does not declare; empty allows any event.
    """

    def __init__(self, publishes: Iterable[type[Event]] = (), *, service: str = "") -> None:
        self._publishes = tuple(publishes)
        self._service = service or "this service"
        self._relay: OutboxRelay | None = None

    def attach(self, relay: "OutboxRelay") -> None:
        """Wake this relay after every write (writes before it is attached go at its first pass)."""
        self._relay = relay

    def entries(self, events: Iterable[Event]) -> list[dict[str, Any]]:
        listed = list(events)
        if not listed:
            raise ValueError("an outbox write needs at least one event")
        for event in listed:
            if self._publishes and type(event) not in self._publishes:
                raise TypeError(
                    f"{self._service} does not declare that it publishes {event.type_name()}"
                )
        return [outbox_entry(event) for event in listed]

    def _written(self) -> None:
        if self._relay is not None:
            self._relay.notify()

    async def insert_one(
        self, collection: Collection, document: Mapping[str, Any], *events: Event
    ) -> dict[str, Any]:
        """Insert `document` with `events` pending; returns the stored document."""
        if OUTBOX_FIELD in document:
            raise ValueError(f"the document already has an {OUTBOX_FIELD!r} field")
        stored = {**document, OUTBOX_FIELD: self.entries(events)}
        await collection.insert_one(stored)
        self._written()
        return stored

    def _with_entries(self, update: Mapping[str, Any], events: Iterable[Event]) -> dict[str, Any]:
        push = dict(update.get("$push", {}))
        if OUTBOX_FIELD in push or OUTBOX_FIELD in update.get("$set", {}):
            raise ValueError(f"the update already changes {OUTBOX_FIELD!r}")
        push[OUTBOX_FIELD] = {"$each": self.entries(events)}
        return {**update, "$push": push}

    async def update_one(
        self,
        collection: Collection,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *events: Event,
        **options: Any,
    ) -> UpdateResult:
        """update_one with `events` pending in the same write; returns pymongo's UpdateResult."""
        result = await collection.update_one(filter, self._with_entries(update, events), **options)
        if result.modified_count or result.upserted_id is not None:
            self._written()
        return result

    async def find_one_and_update(
        self,
        collection: Collection,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *events: Event,
        **options: Any,
    ) -> Document | None:
        """find_one_and_update with `events` pending in the same write; None when nothing matched
        (and nothing was upserted), as pymongo answers."""
        found = await collection.find_one_and_update(
            filter, self._with_entries(update, events), **options
        )
        if found is not None or options.get("upsert"):
            self._written()
        return found
