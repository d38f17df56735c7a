"""The embedded store's writes (unique-index check, equality lookups) do what mongomock's do."""

import random
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from mongomock.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError
from store_comparison import READS, mongomock_own

from common import embedded_store

# The services' shapes (a partial unique index on one field, a compound one, a plain one), a
# sparse one, and a dotted one only mongomock's scan checks.
UNIQUES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("t", 1)], {"partialFilterExpression": {"active": True}}),
    ([("u", 1), ("slot", 1)], {"partialFilterExpression": {"held": True}}),
    ([("e", 1)], {}),
    ([("k", 1)], {"sparse": True}),
]
# The embedded store's shortcuts that these writes go through; mongomock's own code underneath.
PATCHED: list[tuple[Any, str]] = [(Collection, "_ensure_uniques"), *READS]
DOTTED: tuple[list[tuple[str, int]], dict[str, Any]] = ([("d.x", 1)], {})


def random_value(rng: random.Random, *, odd: bool) -> Any:
    if odd and rng.random() < 0.1:
        return rng.choice([[rng.randint(0, 2)], {"k": 1}, 1.5, True, ObjectId("0" * 24)])
    return rng.choice([None, 0, 1, 1.0, 2, "a", "b"])


def random_document(rng: random.Random, *, odd: bool) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for field in ("t", "u", "slot", "e", "k", "n"):
        if rng.random() < 0.8:
            document[field] = random_value(rng, odd=odd)
    document["active"] = rng.random() < 0.6
    document["held"] = rng.random() < 0.5
    if rng.random() < 0.3:
        document["d"] = {"x": rng.randint(0, 30)}
    # Always an _id: the two collections must store the same documents.
    document["_id"] = rng.randint(0, 90)
    return document


def write(rng: random.Random, collection: Any, *, odd: bool) -> None:
    """One insert, update (several ways) or delete, chosen and valued by `rng` alone."""
    roll = rng.random()
    target = rng.randint(0, 60)
    field = rng.choice(["t", "u", "slot", "e", "k", "active", "held", "n"])
    value: Any = rng.random() < 0.5 if field in ("active", "held") else random_value(rng, odd=odd)
    if roll < 0.4:
        collection.insert_one(random_document(rng, odd=odd))
    elif roll < 0.5:
        collection.insert_many(
            [random_document(rng, odd=odd) for _ in range(3)], ordered=rng.random() < 0.5
        )
    elif roll < 0.7:
        collection.update_one({"_id": target}, {"$set": {field: value}})
    elif roll < 0.75:
        collection.update_one({"_id": target}, {"$unset": {field: ""}})
    elif roll < 0.82:
        collection.update_many({"t": random_value(rng, odd=odd)}, {"$set": {"active": True}})
    elif roll < 0.88:
        collection.find_one_and_update({"e": value}, {"$set": {"t": random_value(rng, odd=odd)}})
    elif roll < 0.92:
        upserted = {"_id": target + 100, "n": value}
        collection.update_one(upserted, {"$set": {"e": value}}, upsert=True)
    elif roll < 0.96:
        replacement = random_document(rng, odd=odd)
        replacement.pop("_id", None)
        collection.replace_one({"_id": target}, replacement)
    else:
        collection.delete_one({"_id": target})


def answer(run: Any) -> Any:
    try:
        return ("ok", run())
    except (BulkWriteError, DuplicateKeyError, WriteError, TypeError, ValueError) as error:
        return ("error", type(error).__name__)


def collection(name: str, *, dotted: bool) -> Any:
    created: Any = mongomock.MongoClient(tz_aware=True)["uniques"][name]
    for key, options in UNIQUES + ([DOTTED] if dotted else []):
        created.create_index(key, unique=True, **options)
    created.create_index([("t", 1), ("n", -1)])  # a non-unique one beside them
    return created


@pytest.mark.parametrize("seed", range(16))
def test_the_same_writes_are_refused_and_stored_as_mongomock_does(seed: int) -> None:
    embedded_store.install()
    odd, dotted = seed % 4 == 3, seed % 4 == 2
    fast = collection(f"fast{seed}", dotted=dotted)
    plain = collection(f"plain{seed}", dotted=dotted)
    fast_rng, plain_rng = random.Random(seed), random.Random(seed)
    refused = 0
    for step in range(300):
        fast_answer = answer(lambda: write(fast_rng, fast, odd=odd))
        with mongomock_own(PATCHED):
            plain_answer = answer(lambda: write(plain_rng, plain, odd=odd))
        assert fast_answer == plain_answer, step
        refused += fast_answer == ("error", "DuplicateKeyError")
        if step % 10 == 0:
            assert list(fast.find()) == list(plain.find()), step
            for value in (None, 0, 1, "a", True):
                # Filters that imply a partial index's filter read that index's documents only.
                for filter in ({"u": value, "held": True}, {"t": value, "active": True}):
                    fast_answer = answer(lambda f=filter: list(fast.find(f)))  # type: ignore[misc]
                    with mongomock_own(PATCHED):
                        plain_answer = answer(lambda f=filter: list(plain.find(f)))  # type: ignore[misc]
                    assert fast_answer == plain_answer, (step, filter)
    assert list(fast.find()) == list(plain.find())
    assert refused > 20  # the sequence did run into the indexes


def test_a_second_active_order_for_a_ticket_is_refused_among_many_orders() -> None:
    embedded_store.install()
    orders: Any = mongomock.MongoClient(tz_aware=True)["uniques"]["orders"]
    orders.create_index(
        "ticket_id", unique=True, partialFilterExpression={"active": True}, name="lock"
    )
    orders.insert_many(
        [{"ticket_id": f"t{n}", "active": n % 2 == 0} for n in range(2000)], ordered=True
    )
    fresh = orders.insert_one({"ticket_id": "t1", "active": True})  # t1's only order is over
    with pytest.raises(DuplicateKeyError):
        orders.insert_one({"ticket_id": "t2", "active": True})
    with pytest.raises(DuplicateKeyError):
        orders.update_one({"ticket_id": "t3"}, {"$set": {"ticket_id": "t4", "active": True}})

    assert orders.count_documents({"ticket_id": "t1", "active": True}) == 1
    assert orders.find_one({"_id": fresh.inserted_id})["ticket_id"] == "t1"
    assert orders.count_documents({"ticket_id": "t4"}) == 1
    assert orders.count_documents({}) == 2001


def test_the_check_reads_only_the_documents_with_the_same_values(counted: list[Any]) -> None:
    embedded_store.install()
    orders: Any = mongomock.MongoClient(tz_aware=True)["uniques"]["counted"]
    orders.create_index(
        "ticket_id", unique=True, partialFilterExpression={"active": True}, name="lock"
    )
    orders.insert_many([{"ticket_id": f"t{n}", "active": True} for n in range(1000)])
    counted.clear()

    orders.insert_one({"ticket_id": "new", "active": True})
    with pytest.raises(DuplicateKeyError):
        orders.insert_one({"ticket_id": "t5", "active": True})

    # Per insert: whether it is in the partial index, then the candidates with its ticket_id.
    assert len(counted) <= 6
