"""What one pass of the embedded store's TTL monitor costs as a collection grows.

The store removes expired documents once a second per collection with a TTL index (expiration's
timers, auth's sessions, payments' Stripe events, the rate limits). For each size this stores
that many documents (--kind pending: no date in the TTL field, as timers waiting to fire;
dated: a date none of which has expired yet, as received Stripe events), then times passes of
mongomock's own monitor and of the embedded store's, in this process's CPU time, and the
inserts themselves (which keep the store's expiry order).
"""

import argparse
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import mongomock
from mongomock.store import CollectionStore

from common import embedded_store

PASSES = 20


def documents(size: int, kind: str) -> list[dict[str, Any]]:
    now = datetime.utcnow()
    if kind == "pending":
        return [{"_id": number, "due_at": now} for number in range(size)]
    return [{"_id": number, "ended_at": now + timedelta(seconds=number)} for number in range(size)]


def per_pass_ms(run: Any) -> float:
    run()  # the first builds what later ones reuse
    started = time.process_time()
    for _ in range(PASSES):
        run()
    return (time.process_time() - started) / PASSES * 1000


def measure(size: int, kind: str) -> dict[str, float]:
    collection = mongomock.MongoClient()["bench"][f"{kind}{size}"]
    collection.create_index("ended_at", expireAfterSeconds=3600)
    batch = documents(size, kind)
    started = time.process_time()
    for start in range(0, size, 1000):
        collection.insert_many(batch[start : start + 1000])
    inserted = time.process_time() - started
    store = collection._store

    def own() -> None:
        CollectionStore._remove_expired_documents.__wrapped__(store)  # type: ignore[attr-defined]

    def embedded() -> None:
        store._gittix_last_expiry = float("-inf")  # due now
        CollectionStore._remove_expired_documents(store)

    return {
        "mongomock": per_pass_ms(own),
        "embedded": per_pass_ms(embedded),
        "insert_us": inserted / size * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--kind", choices=("pending", "dated"), default="pending")
    args = parser.parse_args()
    embedded_store.install()
    for size in (int(size) for size in args.sizes.split(",")):
        figures = measure(size, args.kind)
        print(
            f"{size:>8,} {args.kind} documents: a pass {figures['mongomock']:.3f} ms "
            f"(mongomock's) -> {figures['embedded']:.3f} ms; "
            f"{figures['insert_us']:.1f} us CPU per insert"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
