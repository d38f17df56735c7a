"""What placing an order costs orders' database as orders pile up: CPU per order with N stored.

On the embedded store `make up` uses, a collection with orders' own indexes (orders.repository:
the unique partial index that holds one active order per ticket, the buyer's slots, the list's
index, and the outbox's pending index) holds N orders of many buyers, half of them over (not
active, no slot). Then `--writes` times, the writes of one order placement: the buyer's held
slots read (`taken_slots`), the order inserted with its OrderCreated entry, and the entry
pulled by `_id` once published (the relay's write). CPU of this process per placement, after
one placement that is not timed (the store lays out its lookups on first use, once per
process).

With `--plain`, mongomock's own unique-index check and reads run instead of the embedded
store's (`common.embedded_store`): every write tests each unique index against every stored
order, every filter every document. The goal (issue 12): a write costs the same with 100
documents or 10,000 (within 1.3x).
"""

import argparse
import asyncio
import sys
import time
from typing import Any

from bson import ObjectId
from common.outbox import OUTBOX_FIELD, PENDING, PENDING_INDEX
from common.types import utc_now
from mongomock.collection import Collection, Cursor

from common import embedded_store
from orders import repository

BUYERS = 500
SHORTCUTS = [
    (Collection, "_ensure_uniques"),
    (Collection, "_iter_documents"),
    (Collection, "find_one"),
    (Cursor, "_compute_results"),
]


def order(number: int, *, user_id: str, active: bool, slot: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "user_id": user_id,
        "status": "created" if active else "cancelled",
        "active": active,
        "ticket_id": ObjectId(),
        "ticket": {"title": f"Ticket {number}", "price_cents": 1000},
        "buyer_slot": slot,
        "holds_slot": active,
        "expires_at": utc_now(),
        "version": 0 if active else 1,
        "created_at": utc_now(),
    }


async def measure(size: int, writes: int) -> float:
    db = embedded_store.client()["bench_order_writes"]
    orders = db[repository.ORDERS]
    await repository.create_indexes(db)
    await orders.create_index(
        [(f"{OUTBOX_FIELD}.id", 1)], name=PENDING_INDEX, partialFilterExpression=PENDING
    )
    # Each buyer holds at most slots 0-2 with active orders; the rest of theirs are over.
    await orders.insert_many(
        [
            order(n, user_id=f"buyer{n % BUYERS}", active=n < BUYERS * 3, slot=n // BUYERS)
            for n in range(size)
        ]
    )
    started = 0.0
    for number in range(-1, writes):
        if number == 0:  # the first one (not timed) lays out the store's lookups once
            started = time.process_time()
        user_id = f"buyer{abs(number) % BUYERS}"
        {  # the slots the buyer holds, as orders reads them before choosing one
            doc["buyer_slot"]
            async for doc in orders.find(
                {"user_id": user_id, "holds_slot": True}, {"buyer_slot": 1}
            )
        }
        placed = order(size + number, user_id=user_id, active=True, slot=100 + number)
        entry_id = str(ObjectId())
        placed[OUTBOX_FIELD] = [{"id": entry_id, "type": "OrderCreated", "data": {"n": number}}]
        await orders.insert_one(placed)
        await orders.update_one({"_id": placed["_id"]}, {"$pull": {OUTBOX_FIELD: {"id": entry_id}}})
    return (time.process_time() - started) / writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="orders stored, ascending")
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--plain", action="store_true", help="mongomock's own checks and reads")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    embedded_store.install()
    if args.plain:  # for the whole run: mongomock's own functions, as the store wrapped them
        for owner, name in SHORTCUTS:
            setattr(owner, name, getattr(owner, name).__wrapped__)
    costs = [asyncio.run(measure(size, args.writes)) for size in sizes]
    store = "mongomock's own checks and reads" if args.plain else "the embedded store"
    print(f"CPU per order placement's writes on orders' collection ({store}), {args.writes} each:")
    for size, cost in zip(sizes, costs, strict=True):
        print(f"  {size:>7,} orders stored: {cost * 1000:7.3f} ms ({cost / costs[0]:.2f}x)")
    if len(sizes) > 1:
        ratio = costs[-1] / costs[0]
        verdict = "met" if ratio <= 1.3 else "NOT met"
        print(f"  goal: at {sizes[-1]:,} within 1.3x of {sizes[0]:,} -> {ratio:.2f}x ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
