"""CPU of each embedded-store call that placing an order makes, one call at a time, in µs.

On the embedded store `make up` uses (`common.embedded_store`), with the services' own indexes
and repository functions: orders' rate-limit hit, its read of a buyer's held slots, its ticket
lookup, the order's insert with its OrderCreated entry, the relay's pull of that entry once
published, and the replica's versioned write on TicketUpdated; expiration's timer upsert for a
new order and for one it already holds (a redelivery). Each call is timed over `--calls` calls
(CPU of this process, `time.process_time`), after ten that are not timed (the store lays out its
lookups on first use). Before/after a change: run it with the older tree's sources first on
`PYTHONPATH` (bench_tracing.export_tree), then with this one.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from bench_order_writes import order
from bson import ObjectId
from common.outbox import OUTBOX_FIELD, PENDING, PENDING_INDEX
from common.rate_limit import RateLimit
from common.types import utc_now

from common import embedded_store
from expiration import repository as timers
from orders import repository

BUYERS = 50


async def measure(calls: int, stored: int) -> dict[str, float]:
    db = embedded_store.client()["bench_store_calls"]
    orders = db[repository.ORDERS]
    await repository.create_indexes(db)
    await orders.create_index(
        [(f"{OUTBOX_FIELD}.id", 1)], name=PENDING_INDEX, partialFilterExpression=PENDING
    )
    await timers.create_indexes(db)
    # Each buyer holds slots 0-2 with active orders; the rest of theirs are over.
    await orders.insert_many(
        [
            order(n, user_id=f"buyer{n % BUYERS}", active=n < BUYERS * 3, slot=n // BUYERS)
            for n in range(stored)
        ]
    )
    tickets = [
        {"_id": ObjectId(), "title": "Gig", "price_cents": 1250, "user_id": "seller"}
        | {"order_id": None, "version": 0}
        for _ in range(calls + stored + 10)
    ]
    await db[repository.TICKETS].insert_many(tickets)
    limit = RateLimit("reserve", limit=10**9, window_seconds=600, message="slow down")
    placed: list[tuple[Any, str]] = []

    async def hit(n: int) -> None:
        await limit.hit(db, f"buyer{n % BUYERS}")

    async def held_slots(n: int) -> None:
        await repository.taken_slots(db, user_id=f"buyer{n % BUYERS}")

    async def find_ticket(n: int) -> None:
        await repository.find_ticket(db, ticket_id=tickets[n + 10]["_id"])

    async def insert(n: int) -> None:
        placing = order(stored + n, user_id=f"new{n}", active=True, slot=0)
        entry = str(ObjectId())
        placing[OUTBOX_FIELD] = [{"id": entry, "type": "OrderCreated", "data": {"n": n}}]
        await orders.insert_one(placing)
        placed.append((placing["_id"], entry))

    async def pull(n: int) -> None:
        order_id, entry = placed[n + 10]
        await orders.update_one({"_id": order_id}, {"$pull": {OUTBOX_FIELD: {"id": entry}}})

    async def replica(n: int) -> None:
        ticket = {**tickets[n + 10], "version": 1, "order_id": str(ObjectId())}
        await repository.write_ticket_version(db, ticket)  # type: ignore[arg-type]

    async def arm(n: int) -> None:
        due = utc_now() + timedelta(minutes=15)
        await timers.schedule(db, order_id=f"order{n}", due_at=due, trace={"traceparent": "00"})

    async def arm_again(n: int) -> None:
        due = utc_now() + timedelta(minutes=15)
        await timers.schedule(db, order_id=f"order{n}", due_at=due)

    steps: dict[str, Callable[[int], Awaitable[None]]] = {
        "orders: rate-limit hit": hit,
        "orders: a buyer's held slots": held_slots,
        "orders: ticket by _id": find_ticket,
        "orders: order + entry inserted": insert,
        "orders: entry pulled (relay)": pull,
        "orders: replica's versioned write": replica,
        "expiration: timer upsert, new": arm,
        "expiration: timer upsert, held": arm_again,
    }
    costs = {}
    for name, step in steps.items():
        for n in range(-10, 0):  # not timed: first use lays out the store's lookups
            await step(n)
        started = time.process_time()
        for n in range(calls):
            await step(n)
        costs[name] = (time.process_time() - started) / calls
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--stored", type=int, default=200, help="orders stored before")
    args = parser.parse_args()
    embedded_store.install()
    costs = asyncio.run(measure(args.calls, args.stored))
    print(f"CPU per embedded-store call, {args.calls:,} calls each, {args.stored} orders stored:")
    for name, cost in costs.items():
        print(f"  {name:36} {cost * 1e6:7.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
