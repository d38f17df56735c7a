"""CPU of this process per event the outbox relay publishes, on a real nats-server.

`--documents` tickets are inserted through `common.outbox.Outbox` (one TicketCreated each) into
a collection of the embedded store, then one relay pass (`OutboxRelay.relay_written`) publishes
every entry to JetStream, waiting for each ack (up to IN_FLIGHT in flight), and pulls it; then
each ticket is updated as tickets reserves one (`find_one_and_update` by `_id` and version, the
outbox left out of the answer, one TicketUpdated) and a second pass relays those. The figures:
CPU (time.process_time of this process, so the NATS client's own work is in it, the server's
is not) per event of the writes and of the relay passes, and how many reads the relay made of
the collection. Median of `--rounds` rounds, each on fresh documents after one untimed round.
Figures, not pass/fail.
"""

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import nats
from common.events import TicketCreated, TicketUpdated
from common.messaging import Publisher, ensure_stream
from common.outbox import Outbox, OutboxRelay
from gittix_testing.databases import CountingReads
from gittix_testing.processes import start_nats_server
from pymongo import ReturnDocument

from common import embedded_store


async def rounds(url: str, documents: int, count: int) -> list[tuple[float, float, int]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_stream(js)
    db = embedded_store.client()["bench_outbox_relay"]
    tickets = db["tickets"]
    counted = CountingReads(tickets)
    relay = OutboxRelay([counted], Publisher(js), poll_seconds=3600, sweep_seconds=3600)  # type: ignore[list-item]
    outbox = Outbox((TicketCreated, TicketUpdated), service="tickets")
    outbox.attach(relay)
    await relay.relay_once()  # the start's sweep (and the pending index), as a service's first pass
    figures = []
    for number in range(count + 1):
        events = [
            TicketCreated(
                id=f"r{number}t{n}", version=0, title="Gig", price=Decimal("9.99"), user_id="u"
            )
            for n in range(documents)
        ]
        updates = [
            TicketUpdated(
                id=event.id,
                version=1,
                title="Gig",
                price=Decimal("9.99"),
                user_id="u",
                order_id=f"o{event.id}",
            )
            for event in events
        ]
        counted.reads = 0
        started = time.process_time()
        for event in events:
            await outbox.insert_one(tickets, {"_id": event.id, "version": 0}, event)
        written = time.process_time()
        published = await relay.relay_written()
        relayed = time.process_time()
        for update in updates:
            await outbox.find_one_and_update(
                tickets,
                {"_id": update.id, "version": 0},
                {"$set": {"version": 1, "order_id": update.order_id}},
                update,
                projection={"outbox": 0},
                return_document=ReturnDocument.AFTER,
            )
        updated = time.process_time()
        published += await relay.relay_written()
        relayed_again = time.process_time()
        assert published == 2 * documents, published
        if number:  # the first round is not timed
            events_relayed = 2 * documents
            write_cpu = (written - started) + (updated - relayed)
            relay_cpu = (relayed - written) + (relayed_again - updated)
            figures.append((write_cpu / events_relayed, relay_cpu / events_relayed, counted.reads))
    await nc.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    embedded_store.install()
    with tempfile.TemporaryDirectory(prefix="gittix-bench-outbox-") as store:
        server = start_nats_server(Path(store))
        try:
            figures = asyncio.run(
                rounds(f"nats://127.0.0.1:{server.port}", args.documents, args.rounds)
            )
        finally:
            server.stop()
    print(
        f"{platform.machine()}, Python {platform.python_version()}, "
        f"{2 * args.documents} events/round (half inserts, half updates)"
    )
    for write, relay, reads in figures:
        print(
            f"  write {write * 1e6:7.1f} µs/event"
            f"   relay {relay * 1e6:7.1f} µs/event   reads {reads}"
        )
    write = statistics.median(figure[0] for figure in figures)
    relay = statistics.median(figure[1] for figure in figures)
    print(f"median: write {write * 1e6:.1f} µs/event, relay {relay * 1e6:.1f} µs/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
