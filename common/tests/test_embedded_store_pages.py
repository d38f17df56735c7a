"""The embedded store reads a sorted page along a declared index, with mongomock's answers."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from common.pagination import SORT, decode_cursor, read_page
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, WriteError
from store_comparison import in_order, mongomock_own

from common import embedded_store

INDEXES: list[list[tuple[str, int]]] = [
    [("a", 1), ("s", -1), ("_id", -1)],
    [("a", 1), ("b", 1), ("s", 1)],
    [("b", -1), ("_id", 1)],
    [("s", 1)],
    [("d.x", 1), ("_id", 1)],
]
SORTS: list[list[tuple[str, int]]] = [
    [("s", -1), ("_id", -1)],  # served with `a` by equality (the services' shape)
    [("s", 1), ("_id", 1)],  # the same index walked backwards
    [("s", 1)],  # served with `a` and `b` by equality, or alone
    [("s", -1)],
    [("_id", 1)],  # MongoDB's own index
    [("b", -1), ("_id", 1)],
    [("b", 1)],  # no declared index: mongomock sorts
    [("n", 1), ("_id", -1)],
    [("d.x", 1), ("_id", 1)],  # a field of a sub-document (or of each in an array)
    [("d.x", -1), ("_id", -1)],
]
# Top-level inclusions and exclusions (the store projects those itself), and others mongomock's
# own code projects.
PROJECTIONS: list[Any] = [
    None,
    {"n": 0},
    {"a": 1, "s": 1},
    {"_id": 0, "n": 0},
    {"d": 0, "_id": 1},
    {"s": 1, "_id": 0},
    {"n": False},
    {"a": True, "d": 1},
    {"d.x": 1},
    ["a", "s"],
]
EPOCH = datetime(2026, 1, 1)


def random_value(rng: random.Random, *, odd: bool) -> Any:
    """A value from a small palette, so equal values and ties are common."""
    roll = rng.random()
    if odd and roll < 0.08:
        return rng.choice(
            [
                [rng.randint(0, 3), "x"],
                [rng.randint(0, 3), rng.randint(0, 3)],
                [],
                {"k": rng.randint(0, 2)},
                EPOCH,
                float("nan"),
            ]
        )
    return rng.choice([None, 0, 1, 1.0, 2, 2.5, True, False, "x", "y", "", ObjectId("0" * 24), -1])


def random_document(rng: random.Random, *, odd: bool) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for field in ("a", "b", "s", "n"):
        if rng.random() < 0.85:
            document[field] = random_value(rng, odd=odd)
    if rng.random() < 0.5:
        document["s"] = EPOCH + timedelta(seconds=rng.randint(0, 20))
    if rng.random() < 0.5:
        document["d"] = {"x": random_value(rng, odd=odd)}
    elif odd and rng.random() < 0.2:
        document["d"] = [{"x": random_value(rng, odd=odd)}, {"y": 1}]
    if rng.random() < 0.8:
        document["_id"] = rng.choice([ObjectId(), rng.randint(0, 40), f"id{rng.randint(0, 40)}"])
    return document


def random_filter(rng: random.Random, ids: list[Any], *, odd: bool) -> dict[str, Any]:
    filter: dict[str, Any] = {}
    if rng.random() < 0.7:
        filter["a"] = random_value(rng, odd=odd)
    if rng.random() < 0.4:
        filter["b"] = random_value(rng, odd=odd)
    roll = rng.random()
    if roll < 0.15:
        filter["s"] = {"$gt": rng.choice([0, EPOCH + timedelta(seconds=rng.randint(0, 20))])}
    elif roll < 0.3:
        filter["$or"] = [{"n": random_value(rng, odd=odd)}, {"b": {"$exists": False}}]
    elif roll < 0.4 and ids:
        filter["_id"] = {"$in": rng.sample(ids, min(len(ids), 3))}
    elif roll < 0.45:
        filter["a"] = {"$in": [random_value(rng, odd=odd), None]}
    elif roll < 0.75:
        # What comes after a position, as common.pagination asks for the next page.
        operator = rng.choice(["$lt", "$gt"])
        position = rng.choice(
            [EPOCH + timedelta(seconds=rng.randint(0, 20)), random_value(rng, odd=odd)]
        )
        after = rng.choice([*ids, rng.randint(0, 40), ObjectId()]) if ids else 1
        filter["$or"] = [
            {"s": {operator: position}},
            {"s": position, "_id": {operator: after}},
        ]
    return filter


def random_write(rng: random.Random, collection: Any, ids: list[Any], *, odd: bool) -> None:
    """One insert, update, replace or delete, some of them in-place updates of sort fields."""
    roll = rng.random()
    target = rng.choice(ids) if ids else None
    try:
        if roll < 0.45 or target is None:
            collection.insert_one(random_document(rng, odd=odd))
        elif roll < 0.65:
            field = rng.choice(["a", "b", "s", "n", "d.x"])
            if rng.random() < 0.2:
                collection.update_one({"_id": target}, {"$unset": {field: ""}})
            else:
                collection.update_one(
                    {"_id": target}, {"$set": {field: random_value(rng, odd=odd)}}
                )
        elif roll < 0.72:
            collection.update_many({"a": random_value(rng, odd=odd)}, {"$inc": {"n": 1}})
        elif roll < 0.78:
            replacement = random_document(rng, odd=odd)
            replacement.pop("_id", None)
            collection.replace_one({"_id": target}, replacement)
        elif roll < 0.84:
            collection.find_one_and_update(
                {"a": random_value(rng, odd=odd)},
                {"$set": {"s": EPOCH + timedelta(seconds=rng.randint(0, 20))}},
                sort=[("s", -1), ("_id", -1)],
            )
        elif roll < 0.95:
            collection.delete_one({"_id": target})
        else:
            collection.delete_many({"b": random_value(rng, odd=odd)})
    except (DuplicateKeyError, WriteError, TypeError, ValueError):
        pass  # a duplicate _id, $inc on a string, d.x of an array: refused as mongomock does


def answer(run: Callable[[], Any]) -> Any:
    try:
        return ("ok", in_order(run()))
    except Exception as error:  # the same refusal counts as the same answer
        return ("error", type(error).__name__)


@pytest.mark.parametrize("seed", range(24))
def test_a_sorted_page_is_what_mongomock_answers_after_any_writes(seed: int) -> None:
    rng = random.Random(seed)
    odd = seed % 3 == 2  # some runs hold arrays, documents, dates and NaN in the fields
    embedded_store.install()
    collection: Any = mongomock.MongoClient(tz_aware=True)["pages"][f"c{seed}"]
    for key in INDEXES:
        collection.create_index(key)
    compared = 0
    for step in range(220):
        random_write(
            rng, collection, [doc["_id"] for doc in collection.find({}, {"_id": 1})], odd=odd
        )
        if step % 4:
            continue
        ids = [doc["_id"] for doc in collection.find({}, {"_id": 1})]
        for _ in range(6):
            filter = random_filter(rng, ids, odd=odd)
            sort = rng.choice(SORTS)
            skip = rng.choice([0, 0, 1, 3])
            limit = rng.choice([1, 2, 5, 20, -3])
            projection = rng.choice(PROJECTIONS)

            def page(
                filter: Any = filter,
                sort: Any = sort,
                skip: int = skip,
                limit: int = limit,
                projection: Any = projection,
            ) -> list[Any]:
                return list(collection.find(filter, projection).sort(sort).skip(skip).limit(limit))

            def first(filter: Any = filter, sort: Any = sort, projection: Any = projection) -> Any:
                return collection.find_one(filter, projection, sort=sort)

            def every(filter: Any = filter, projection: Any = projection, skip: int = skip) -> Any:
                return (
                    list(collection.find(filter, projection)),
                    list(collection.find(filter, projection).skip(skip)),
                    collection.count_documents(filter),
                )

            fast_page, fast_first, fast_every = answer(page), answer(first), answer(every)
            with mongomock_own():
                plain_page, plain_first, plain_every = answer(page), answer(first), answer(every)
            assert fast_page == plain_page, (filter, sort, skip, limit, projection)
            assert fast_first == plain_first, (filter, sort, projection)
            assert fast_every == plain_every, (filter, projection)
            compared += 1
    assert compared > 300


async def store_tickets(count: int) -> Any:
    tickets = embedded_store.client()["pages"]["tickets"]
    await tickets.create_index([("order_id", 1), ("created_at", -1), ("_id", -1)])
    now = datetime.now(UTC)
    await tickets.insert_many(
        [
            {"order_id": None, "created_at": now - timedelta(seconds=n % 500), "n": n}
            for n in range(count)
        ]
    )
    return tickets


async def test_a_page_reads_only_its_documents_when_an_index_serves_it(counted: list[Any]) -> None:
    tickets = await store_tickets(3000)
    await tickets.update_many({"n": {"$lt": 40}}, {"$set": {"order_id": "reserved"}})
    await read_page(tickets, {"order_id": None}, limit=20, after=None)  # orders the store once
    counted.clear()

    first = await read_page(tickets, {"order_id": None}, limit=20, after=None)
    read_for_first = len(counted)
    assert first.next_cursor is not None
    second = await read_page(
        tickets, {"order_id": None}, limit=20, after=decode_cursor(first.next_cursor)
    )

    assert read_for_first <= 21  # the page, and the one that says there is a next page
    assert len(counted) <= read_for_first + 20 + 21
    with mongomock_own():
        every = await tickets.find({"order_id": None}).sort(SORT).to_list(None)
    assert len(every) == 2960
    assert first.documents == every[:20] and second.documents == every[20:40]


async def test_a_page_deep_in_the_list_reads_only_its_documents(counted: list[Any]) -> None:
    tickets = await store_tickets(3000)
    with mongomock_own():
        every = await tickets.find({"order_id": None}).sort(SORT).to_list(None)
    after = None
    for _ in range(100):
        counted.clear()
        page = await read_page(tickets, {"order_id": None}, limit=20, after=after)
        assert page.next_cursor is not None
        after = decode_cursor(page.next_cursor)

    # The 100th page (2,000 tickets in) starts where the 99th ended, as an index scan would.
    assert len(counted) <= 21
    assert page.documents == every[1980:2000]


def test_a_page_after_a_position_still_finds_an_array_ordered_before_it() -> None:
    # [5, 0] sorts by 5, before the position 2, yet matches "below 2" by its 0: a walk that
    # started past the position would miss it.
    embedded_store.install()
    collection: Any = mongomock.MongoClient()["pages"]["arrays"]
    collection.create_index([("s", -1), ("_id", -1)])
    collection.insert_many(
        [{"_id": 1, "s": [5, 0]}, {"_id": 2, "s": 3}, {"_id": 3, "s": 1}, {"_id": 4, "s": 2}]
    )
    after = {"$or": [{"s": {"$lt": 2}}, {"s": 2, "_id": {"$lt": 9}}]}

    page = list(collection.find(after).sort([("s", -1), ("_id", -1)]).limit(5))

    assert [document["_id"] for document in page] == [1, 4, 3]


async def test_a_sort_no_index_serves_still_reads_every_document(counted: list[Any]) -> None:
    tickets = await store_tickets(300)
    counted.clear()

    page = await tickets.find({"order_id": None}).sort([("n", -1)]).limit(5).to_list(None)

    assert [doc["n"] for doc in page] == [299, 298, 297, 296, 295]
    assert len(counted) >= 300


async def test_paging_through_a_list_while_it_changes_sees_each_unchanged_ticket_once() -> None:
    tickets = await store_tickets(250)
    shown: list[Any] = []
    after = None
    while True:
        page = await read_page(tickets, {"order_id": None}, limit=20, after=after)
        shown.extend(doc["_id"] for doc in page.documents)
        # Meanwhile one ticket shown is reserved, one not yet shown is too, a new one listed.
        await tickets.update_one({"_id": shown[-1]}, {"$set": {"order_id": "o"}})
        await tickets.find_one_and_update(
            {"order_id": None, "_id": {"$nin": shown}},
            {"$set": {"order_id": "o"}},
            sort=[("created_at", 1), ("_id", 1)],
        )
        await tickets.insert_one({"order_id": None, "created_at": datetime.now(UTC), "n": -1})
        if page.next_cursor is None:
            break
        after = decode_cursor(page.next_cursor)

    assert len(shown) == len(set(shown))
    with mongomock_own():
        listed = [doc["_id"] async for doc in tickets.find({"n": {"$gte": 0}}).sort(SORT)]
    reserved_unseen = {doc["_id"] async for doc in tickets.find({"order_id": "o"})} - set(shown)
    assert shown == [ticket_id for ticket_id in listed if ticket_id not in reserved_unseen]


async def test_the_earliest_due_is_found_without_reading_the_others(counted: list[Any]) -> None:
    timers = embedded_store.client()["pages"]["timers"]
    await timers.create_index([("state", 1), ("due_at", 1)])
    now = datetime.now(UTC)
    await timers.insert_many(
        [
            {"state": "fired" if n % 3 else "pending", "due_at": now + timedelta(seconds=n)}
            for n in range(600)
        ]
    )
    await timers.find_one({"state": "pending"}, sort=[("due_at", 1)])
    counted.clear()

    earliest = await timers.find_one({"state": "pending"}, sort=[("due_at", 1)])
    claimed = await timers.find_one_and_update(
        {"state": "pending"},
        {"$set": {"state": "fired"}},
        sort=[("due_at", 1)],
        return_document=ReturnDocument.AFTER,
    )
    after_claim = await timers.find_one({"state": "pending"}, sort=[("due_at", 1)])
    reads = len(counted)

    with mongomock_own():
        pending = await timers.find({"state": "pending"}).sort([("due_at", 1)]).to_list(None)
    assert earliest is not None and claimed is not None
    assert claimed["_id"] == earliest["_id"] and claimed["state"] == "fired"
    assert after_claim == pending[0] and after_claim["due_at"] > earliest["due_at"]
    assert len(pending) == 199
    assert reads <= 10
