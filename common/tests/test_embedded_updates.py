"""An update of one document by _id on the embedded store gives mongomock's own answers."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mongomock.collection import Collection
from pymongo import ReturnDocument
from store_comparison import in_order, mongomock_own

from common import embedded_store, embedded_updates

NOW = datetime(2026, 11, 28, 3, 10, 0, 123456, tzinfo=UTC)


def stored() -> list[dict[str, Any]]:
    return [
        {"_id": "t1", "state": "pending", "due_at": NOW, "trace": {"traceparent": "00-a-b-01"}},
        {
            "_id": "t2",
            "state": "fired",
            "outbox": [{"id": "e1", "data": {"n": 1}}, {"id": "e2", "data": {"n": 2}}],
        },
        {"_id": "t3", "state": "fired", "outbox": "not an array", "tags": ["a", "b", "a"]},
        {"_id": 4, "state": "pending", "code": "X"},
        # a partial unique index: one slot held at a time
        {"_id": 6, "slot": 1, "holds": True},
        {"_id": 7, "slot": 1, "holds": False},
    ]


UPDATES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    # the claim: state changed, an entry pushed to a missing array
    (
        {"_id": "t1", "state": "pending"},
        {
            "$set": {"state": "fired", "fired_at": NOW + timedelta(seconds=1)},
            "$push": {"outbox": {"$each": [{"id": "e9", "data": {"at": NOW}}]}},
        },
    ),
    ({"_id": "t1", "state": "fired"}, {"$set": {"state": "dropped"}}),  # filter does not match
    ({"_id": "missing"}, {"$set": {"state": "fired"}}),
    ({"_id": {"$eq": "t2"}}, {"$push": {"outbox": {"$each": [{"id": "e3"}]}}}),  # appended
    ({"_id": "t2"}, {"$pull": {"outbox": {"id": "e1"}}}),  # the relay's pull
    ({"_id": "t2"}, {"$pull": {"outbox": {"id": {"$in": ["e2", "e7"]}}}}),
    ({"_id": "t2"}, {"$pull": {"outbox": {"id": "nothing"}}}),  # matched, not modified
    ({"_id": "t1"}, {"$pull": {"outbox": {"id": "e1"}}}),  # no such array
    ({"_id": "t3"}, {"$pull": {"outbox": {"id": "e1"}}}),  # not an array: skipped
    ({"_id": "t3"}, {"$pull": {"tags": {"$in": ["a"]}}}),  # scalars: mongomock's own
    ({"_id": "t3"}, {"$push": {"outbox": {"$each": [1]}}}),  # push to a non-array: error
    ({"_id": "t1"}, {"$set": {"state": "pending"}}),  # the same value: not modified
    ({"_id": "t1"}, {"$set": {"list": [1, [2, 3]], "at": NOW, "doc": {"at": NOW}}}),
    ({"_id": 4}, {"$set": {"code": "Y"}}),  # collides with a unique index
    ({"_id": 7}, {"$set": {"holds": True}}),  # enters a partial unique index: collides
    ({"_id": 7}, {"$set": {"slot": 2, "holds": True}}),  # enters it on a free slot
    ({"_id": 7}, {"$set": {"note": "x"}, "$push": {"log": {"$each": [1]}}}),  # touches neither
    ({"_id": "t1"}, {"$set": {"bad": {1, 2}}}),  # not BSON: mongomock's error
    ({"_id": "t1"}, {"$set": {"state": "x"}, "$push": {"state": 1}}),  # one field twice
    ({"_id": "t1"}, {"$set": {"nested.field": 1}}),  # dotted: mongomock's own
    ({"_id": "t1"}, {"$inc": {"count": 1}}),  # a missing field: set to the increment
    ({"_id": 4, "hits": {"$exists": False}}, {"$inc": {"hits": 2.5}, "$set": {"code": "Z"}}),
    ({"_id": "t1"}, {"$inc": {"state": 1}}),  # not a number: mongomock's error
    ({"_id": "t1"}, {"$inc": {"state": "a"}}),  # nor is the increment
    ({"state": "pending"}, {"$set": {"state": "taken"}}),  # not by _id: the first one found
    ({"state": "nothing"}, {"$set": {"state": "taken"}}),  # none found
    ({"_id": "t1"}, {"$min": {"count": 1}}),  # another operator: mongomock's own
    ({"_id": {"$in": ["t1", "t2"]}}, {"$set": {"state": "many"}}),  # more than one candidate
]


# find_one_and_update's projections: tickets' reads without the outbox, an inclusion, a list,
# and one without `_id` (mongomock then reads the answer back by the filter: its own path).
PROJECTIONS: dict[str, Any] = {
    "": None,
    " without outbox": {"outbox": 0},
    " without outbox or _id": {"outbox": 0, "_id": False},
    " only state": {"state": 1},
    " state and code": {"code": True, "state": 1, "_id": 1},
    " listed": ["state", "code"],
    " without _id": {"_id": 0, "state": 1},
}


async def apply(collection: Any, how: str, filter: Any, update: Any) -> Any:
    try:
        if how == "update_one":
            result = await collection.update_one(filter, update)
            return (result.matched_count, result.modified_count, result.upserted_id)
        when, _, projected = how.partition(" ")
        return await collection.find_one_and_update(
            filter,
            update,
            projection=PROJECTIONS[f" {projected}" if projected else ""],
            return_document=ReturnDocument.AFTER if when == "after" else None,
        )
    except Exception as error:
        return type(error).__name__


@pytest.fixture
def fresh() -> Callable[[], Any]:
    embedded_store.install()
    embedded_updates.install()
    counter = iter(range(1_000_000))

    async def make() -> Any:
        collection = embedded_store.client()["updates_test"][f"c{next(counter)}"]
        await collection.create_index("code", unique=True, sparse=True)
        await collection.create_index(
            "slot", unique=True, partialFilterExpression={"holds": {"$eq": True}}
        )
        await collection.insert_many([*stored(), {"_id": 5, "code": "Y"}])
        return collection

    return make


@pytest.mark.parametrize(
    "how",
    [
        "update_one",
        *(f"{when}{projected}" for when in ("before", "after") for projected in PROJECTIONS),
    ],
)
@pytest.mark.parametrize(("filter", "update"), UPDATES)
async def test_an_update_by_id_gives_mongomock_s_own_answer_and_stored_documents(
    fresh: Callable[[], Any],
    how: str,
    filter: dict[str, Any],
    update: dict[str, Any],
) -> None:
    fast = await fresh()
    answer = await apply(fast, how, filter, update)
    after = [doc async for doc in fast.find({})]

    with mongomock_own([(Collection, "_update"), (Collection, "_find_and_modify")]):
        plain = await fresh()
        by_mongomock = await apply(plain, how, filter, update)
        after_mongomock = [doc async for doc in plain.find({})]

    assert in_order(answer) == in_order(by_mongomock)
    assert in_order(after) == in_order(after_mongomock)


# Upserts: expiration's timer (`$setOnInsert` on a plain `_id`) and the shapes around it.
UPSERTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"_id": "new"}, {"$setOnInsert": {"due_at": NOW, "state": "pending", "trace": {"a": "b"}}}),
    ({"_id": "t1"}, {"$setOnInsert": {"state": "dropped"}}),  # there already: left as it is
    ({"_id": 8}, {"$setOnInsert": {"list": [1, [2]], "at": NOW}}),
    ({"_id": 9}, {"$setOnInsert": {"code": "Y"}}),  # collides with a unique index
    ({"_id": 10}, {"$setOnInsert": {"slot": 1, "holds": True}}),  # enters a partial one: collides
    ({"_id": 11}, {"$setOnInsert": {"bad": {1, 2}}}),  # not BSON: mongomock's error
    ({"_id": 12}, {"$setOnInsert": {"$bad": 1}}),  # not a field name
    ({"_id": 13}, {"$setOnInsert": {}}),  # nothing to set
    ({"_id": 14}, {"$setOnInsert": {"a.b": 1}}),  # dotted: mongomock's own
    ({"_id": "t1", "state": "fired"}, {"$setOnInsert": {"n": 1}}),  # more than the _id
    ({"_id": 1.0}, {"$setOnInsert": {"n": 1}}),  # a float _id: mongomock's own
    ({"_id": "t1"}, {"$set": {"state": "x"}, "$setOnInsert": {"n": 1}}),  # another operator
    ({"_id": "other"}, {"$set": {"state": "x"}}),
]


@pytest.mark.parametrize(("filter", "update"), UPSERTS)
async def test_an_upsert_by_id_gives_mongomock_s_own_answer_and_stored_documents(
    fresh: Callable[[], Any], filter: dict[str, Any], update: dict[str, Any]
) -> None:
    async def upsert(collection: Any) -> Any:
        try:
            result = await collection.update_one(filter, update, upsert=True)
        except Exception as error:
            return type(error).__name__
        raw = {key: value for key, value in result.raw_result.items() if key != "connectionId"}
        return (result.matched_count, result.modified_count, result.upserted_id, raw)

    fast = await fresh()
    answer = await upsert(fast)
    after = [doc async for doc in fast.find({})]

    with mongomock_own([(Collection, "_update")]):
        plain = await fresh()
        by_mongomock = await upsert(plain)
        after_mongomock = [doc async for doc in plain.find({})]

    assert in_order(answer) == in_order(by_mongomock)
    assert in_order(after) == in_order(after_mongomock)


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What mongomock's updates deep-copy from now on."""
    copied: list[Any] = []
    monkeypatch.setattr(
        "mongomock.collection.copy.deepcopy", lambda value, *rest: copied.append(value)
    )
    return copied


async def test_an_upsert_of_a_timer_copies_no_document(
    fresh: Callable[[], Any], copies: list[Any]
) -> None:
    collection = await fresh()

    for key in ("t1", "new"):
        await collection.update_one(
            {"_id": key}, {"$setOnInsert": {"state": "pending"}}, upsert=True
        )

    assert copies == []
    assert await collection.find_one({"_id": "new"}) == {"_id": "new", "state": "pending"}


async def test_the_update_by_id_does_not_copy_the_whole_document(
    fresh: Callable[[], Any], copies: list[Any]
) -> None:
    collection = await fresh()

    result = await collection.update_one({"_id": "t2"}, {"$pull": {"outbox": {"id": "e1"}}})

    assert result.modified_count == 1
    assert copies == []
