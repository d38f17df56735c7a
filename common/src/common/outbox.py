"""The transactional outbox: pending events live inside the changed document until published.

A repository writes through an `Outbox`, which appends the events' entries in the same
single-document write that changes the state and version (so a crash can never split the two)
and then hands the relay the entries it wrote (so nobody has to remember to, and the relay need
not read them back). The relay publishes each pending entry with Nats-Msg-Id = event id (so a
second publish is dropped by the stream) and then pulls it.
"""

import asyncio
import itertools
import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pymongo.results import UpdateResult

from common.events import Envelope, Event
from common.messaging import Publisher
from common.mongo import Collection, Document
from common.telemetry import TRACE_FIELD, current_carrier

log = logging.getLogger("common.outbox")

OUTBOX_FIELD = "outbox"
# Documents with at least one pending entry, and the partial index holding only those.
PENDING: dict[str, Any] = {f"{OUTBOX_FIELD}.id": {"$exists": True}}
PENDING_INDEX = "outbox_pending"
# A document with no pending entry (an empty outbox, or none at all).
NOTHING_PENDING: dict[str, Any] = {f"{OUTBOX_FIELD}.id": {"$exists": False}}
# Documents a pass publishes at once, each publish with its ack in flight.
IN_FLIGHT = 128


class WrittenEntry(NamedTuple):
    """An entry as the `Outbox` wrote it, handed to the relay so it can publish it as is."""

    envelope: Envelope
    trace_context: dict[str, str] | None


def _entry(event: Event) -> tuple[dict[str, Any], WrittenEntry]:
    envelope = Envelope.wrap(event)
    entry = envelope.model_dump(mode="json")
    carrier = current_carrier()
    if carrier:
        entry[TRACE_FIELD] = carrier
    return entry, WrittenEntry(envelope, carrier or None)


def outbox_entry(event: Event) -> dict[str, Any]:
    """The stored form of a pending event: its whole envelope, and the trace context it was
    written in (when tracing is on), so whichever pass publishes it continues that trace."""
    return _entry(event)[0]


class OutboxRelay:
    """Publishes pending outbox entries of the given collections, oldest first per document.

    A write through the `Outbox` hands the relay the written document's id and the entries it
    wrote, so a pass publishes those without reading the document back. Anything else pending
    (left by a crash, by a publish that failed, or by a write that could not name its document)
    is found by a sweep at start, every `sweep_seconds` and at stop, through the partial index
    on pending entries (`create_pending_index`): never a collection scan.

    An entry must never overtake an older one of its document, whichever process wrote it: the
    `Outbox` hands entries over only when its write found no older entry pending in the
    document, and otherwise the relay reads the document back (the store is the truth). A
    document whose publish failed is read back too, and stays so until that read.
    """

    def __init__(
        self,
        collections: list[Collection],
        publisher: Publisher,
        *,
        poll_seconds: float = 1.0,
        sweep_seconds: float = 30.0,
    ) -> None:
        self._collections = {collection.name: collection for collection in collections}
        self._publisher = publisher
        self._poll_seconds = poll_seconds
        self._sweep_seconds = sweep_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # Written documents not yet relayed, per collection name, in the order written: the
        # entries to publish, or None when the document is to be read back.
        self._written: dict[str, dict[Any, list[WrittenEntry] | None]] = {}
        self._sweep_asked = True
        self._last_sweep = 0.0
        self._indexed = False

    def notify(
        self,
        collection: str | None = None,
        document_id: Any = None,
        entries: Iterable[WrittenEntry] | None = None,
    ) -> None:
        """Say a document just got pending events, so they go out now rather than at a sweep.

        With `entries` (what the write appended, in order, to a document that held no other
        pending entry) a pass publishes them without reading the document, unless it is to be
        read back anyway. Without them the pass reads the document back. Without an id (a
        write that cannot tell which document it changed) the next pass sweeps the pending
        index instead.
        """
        if collection in self._collections and document_id is not None:
            written = self._written.setdefault(collection, {})
            queued = written.get(document_id, [])
            if entries is None or queued is None:
                written[document_id] = None
            else:
                written[document_id] = [*queued, *entries]
        else:
            self._sweep_asked = True
        self._wake.set()

    def _read_back_all(self) -> None:
        """Drop every entry handed over: the documents are read back at the next pass, so a
        bus outage does not keep every event written meanwhile in memory too."""
        for queued in self._written.values():
            for document_id in queued:
                queued[document_id] = None

    async def create_pending_index(self) -> None:
        """The partial index holding only documents with pending entries (what a sweep reads);
        the first sweep creates it if nobody did."""
        for collection in self._collections.values():
            await collection.create_index(
                [(f"{OUTBOX_FIELD}.id", 1)], name=PENDING_INDEX, partialFilterExpression=PENDING
            )
        self._indexed = True

    async def _publish(
        self, collection: Collection, document_id: Any, entries: Iterable[WrittenEntry]
    ) -> int:
        published = 0
        for envelope, trace_context in entries:
            await self._publisher.publish_envelope(envelope, trace_context=trace_context)
            await collection.update_one(
                {"_id": document_id}, {"$pull": {OUTBOX_FIELD: {"id": envelope.id}}}
            )
            published += 1
        return published

    async def _relay_document(self, collection: Collection, document: Document) -> int:
        return await self._publish(
            collection,
            document["_id"],
            (_stored(entry) for entry in document.get(OUTBOX_FIELD) or []),
        )

    async def _relay_written_one(
        self, collection: Collection, document_id: Any, entries: list[WrittenEntry] | None
    ) -> int:
        if entries is not None:
            return await self._publish(collection, document_id, entries)
        document = await collection.find_one({"_id": document_id}, {OUTBOX_FIELD: 1})
        return 0 if document is None else await self._relay_document(collection, document)

    async def relay_written(self) -> int:
        """Publish the entries of the documents written since the last pass: those handed over,
        or else the document's, read by `_id`.

        Up to IN_FLIGHT documents at a time, each publish waiting for its own ack (a burst of
        writes does not wait for one ack after another); a document's own entries still go
        out one after the other, in order.
        """
        published = 0
        while self._written:
            name, ids = next(iter(self._written.items()))
            collection = self._collections[name]
            while ids:
                # Taken before the read: a write to the same document during this pass names
                # it again, and the next round publishes what that write added.
                batch = list(itertools.islice(ids.items(), IN_FLIGHT))
                for document_id, _ in batch:
                    del ids[document_id]
                results = await asyncio.gather(
                    *(self._relay_written_one(collection, *written) for written in batch),
                    return_exceptions=True,
                )
                failures = [result for result in results if isinstance(result, BaseException)]
                published += sum(result for result in results if isinstance(result, int))
                if failures:
                    for (document_id, _), result in zip(batch, results, strict=True):
                        if isinstance(result, BaseException):
                            # Retried at the next pass from the store, which still holds what
                            # was not published: entries handed since then must wait for it.
                            ids[document_id] = None
                    self._read_back_all()
                    raise failures[0]
            del self._written[name]
        return published

    async def relay_once(self) -> int:
        """Publish everything pending now (a sweep); returns how many entries were published."""
        self._sweep_asked = False
        self._last_sweep = asyncio.get_running_loop().time()
        if not self._indexed:
            await self.create_pending_index()
        published = await self.relay_written()
        for collection in self._collections.values():
            async for document in collection.find(PENDING, {OUTBOX_FIELD: 1}):
                published += await self._relay_document(collection, document)
        return published

    async def _pass(self, *, sweep: bool) -> None:
        due = asyncio.get_running_loop().time() - self._last_sweep >= self._sweep_seconds
        if sweep or self._sweep_asked or due:
            await self.relay_once()
        else:
            await self.relay_written()

    async def _run(self) -> None:
        while True:
            # Read before the pass: a stop asked for during it gets one more pass, which sees
            # what the last requests and events wrote.
            last = self._stopping
            self._wake.clear()
            failed = False
            try:
                await self._pass(sweep=last)
            except asyncio.CancelledError:
                raise
            except Exception:
                failed = True
                log.exception("outbox relay failed; pending events stay until the next pass")
            if last:
                return
            if self._written and not failed:
                continue  # written during the pass: relay them now
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
    write, then hands them to the relay attached to it. A write naming its document by `_id`
    first tries that document only if it holds no pending entry: a match means nothing older
    is pending, so the relay may publish the entries as handed; else it writes as asked and
    the relay reads the document back. `publishes` (the service contract's)
    refuses an event the service does not declare; empty allows any event.
    """

    def __init__(self, publishes: Iterable[type[Event]] = (), *, service: str = "") -> None:
        self._publishes = tuple(publishes)
        self._service = service or "this service"
        self._relay: OutboxRelay | None = None

    def attach(self, relay: "OutboxRelay") -> None:
        """Wake this relay after every write (writes before it is attached go at its first pass)."""
        self._relay = relay

    def entries(self, events: Iterable[Event]) -> tuple[list[dict[str, Any]], list[WrittenEntry]]:
        """The stored entries of `events`, and the same entries as the relay publishes them."""
        listed = list(events)
        if not listed:
            raise ValueError("an outbox write needs at least one event")
        for event in listed:
            if self._publishes and type(event) not in self._publishes:
                raise TypeError(
                    f"{self._service} does not declare that it publishes {event.type_name()}"
                )
        stored, written = [], []
        for event in listed:
            entry, handed = _entry(event)
            stored.append(entry)
            written.append(handed)
        return stored, written

    def _written(
        self, collection: Collection, document_id: Any, entries: list[WrittenEntry] | None
    ) -> None:
        if self._relay is not None:
            self._relay.notify(collection.name, document_id, entries)

    async def insert_one(
        self, collection: Collection, document: Mapping[str, Any], *events: Event
    ) -> dict[str, Any]:
        """Insert `document` with `events` pending; returns the stored document."""
        if OUTBOX_FIELD in document:
            raise ValueError(f"the document already has an {OUTBOX_FIELD!r} field")
        entries, written = self.entries(events)
        stored = {**document, OUTBOX_FIELD: entries}
        await collection.insert_one(stored)
        self._written(collection, stored.get("_id"), written)
        return stored

    def _with_entries(
        self, update: Mapping[str, Any], events: Iterable[Event]
    ) -> tuple[dict[str, Any], list[WrittenEntry]]:
        push = dict(update.get("$push", {}))
        if OUTBOX_FIELD in push or OUTBOX_FIELD in update.get("$set", {}):
            raise ValueError(f"the update already changes {OUTBOX_FIELD!r}")
        entries, written = self.entries(events)
        push[OUTBOX_FIELD] = {"$each": entries}
        return {**update, "$push": push}, written

    async def update_one(
        self,
        collection: Collection,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        *events: Event,
        **options: Any,
    ) -> UpdateResult:
        """update_one with `events` pending in the same write; returns pymongo's UpdateResult."""
        with_entries, written = self._with_entries(update, events)
        alone = _with_nothing_pending(filter, options)
        if alone is not None:
            result = await collection.update_one(alone, with_entries, **options)
            if result.modified_count:
                self._written(collection, _named_id(filter), written)
                return result
        result = await collection.update_one(filter, with_entries, **options)
        if result.upserted_id is not None:
            self._written(collection, result.upserted_id, written)  # a new document: these alone
        elif result.modified_count:
            # The id is the filter's when it names one (read back: older entries may be
            # pending); otherwise the relay sweeps.
            self._written(collection, _named_id(filter), None)
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
        with_entries, written = self._with_entries(update, events)
        alone = _with_nothing_pending(filter, options)
        if alone is not None:
            found = await collection.find_one_and_update(alone, with_entries, **options)
            if found is not None:
                self._written(collection, _named_id(filter), written)
                return found
        found = await collection.find_one_and_update(filter, with_entries, **options)
        if found is not None and "_id" in found:
            self._written(collection, found["_id"], None)
        elif found is not None or options.get("upsert"):
            self._written(collection, _named_id(filter), None)
        return found


def _stored(entry: Mapping[str, Any]) -> WrittenEntry:
    """A stored entry as the relay publishes it."""
    stored = dict(entry)
    trace_context = stored.pop(TRACE_FIELD, None)
    return WrittenEntry(Envelope.model_validate(stored), trace_context)


def _with_nothing_pending(
    filter: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any] | None:
    """`filter` narrowed to its document when it holds no pending entry; None for a filter
    naming no single document by `_id`, or an upsert (a miss would insert a document)."""
    if _named_id(filter) is None or options.get("upsert") or NOTHING_PENDING.keys() & filter:
        return None
    return {**filter, **NOTHING_PENDING}


def _named_id(filter: Mapping[str, Any]) -> Any:
    """The `_id` a filter names by plain equality, or None."""
    value = filter.get("_id")
    return None if isinstance(value, Mapping) else value
