"""The embedded store answers lookups by _id from its dict, with mongomock's answers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import mongomock
import pytest
from bson import ObjectId
from gittix_testing import wait_until
from pymongo import ReturnDocument

from common import embedded_store


@pytest.fixture
def tickets() -> Any:
    embedded_store.install()
    return embedded_store.client()["store_test"]["tickets"]


async def seed(tickets: Any) -> list[ObjectId]:
    ids = [ObjectId() for _ in range(5)]
    for number, ticket_id in enumerate(ids):
        await tickets.insert_one({"_id": ticket_id, "n": number, "order_id": None})
    await tickets.insert_one({"_id": "plain", "n": 10, "order_id": "o1"})
    await tickets.insert_one({"_id": {"a": 1}, "n": 11, "order_id": None})
    return ids


@pytest.mark.parametrize(
    "make_filter",
    [
        lambda ids: {"_id": ids[2]},
        lambda ids: {"_id": {"$eq": ids[3]}},
        lambda ids: {"_id": {"$in": [ids[0], ids[4], "missing", ids[0]]}},
        lambda ids: {"_id": ids[1], "n": 1},
        lambda ids: {"_id": ids[1], "n": 2},  # the _id matches, the rest does not
        lambda ids: {"_id": "plain", "order_id": {"$ne": None}},
        lambda ids: {"_id": {"a": 1}},
        lambda ids: {"_id": ObjectId()},
        lambda ids: {"_id": {"$gt": ids[0]}},  # a range: mongomock's own scan
        lambda ids: {"_id": {"$in": [{"a": 1}]}},
    ],
)
async def test_a_lookup_by_id_finds_what_a_scan_of_every_document_finds(
    tickets: Any, make_filter: Any
) -> None:
    ids = await seed(tickets)
    query = make_filter(ids)

    found = sorted(str(doc["_id"]) for doc in await tickets.find(query).to_list(None))

    every = [doc async for doc in tickets.find({})]
    matching = sorted(
        str(doc["_id"]) for doc in every if mongomock.filtering.filter_applies(query, doc)
    )
    assert found == matching


async def test_writes_by_id_change_only_that_document(tickets: Any) -> None:
    ids = await seed(tickets)

    after = await tickets.find_one_and_update(
        {"_id": ids[1], "n": 1},
        {"$set": {"order_id": "o9"}},
        return_document=ReturnDocument.AFTER,
    )
    assert after is not None and after["order_id"] == "o9"
    stale = await tickets.update_one({"_id": ids[1], "n": 99}, {"$set": {"order_id": "x"}})
    assert stale.matched_count == 0
    deleted = await tickets.delete_one({"_id": ids[2]})
    assert deleted.deleted_count == 1
    upserted = await tickets.update_one({"_id": "new"}, {"$set": {"n": 7}}, upsert=True)
    assert upserted.upserted_id == "new"

    rows = {str(doc["_id"]): doc async for doc in tickets.find({})}
    assert rows[str(ids[1])]["order_id"] == "o9"
    assert str(ids[2]) not in rows
    assert rows["new"]["n"] == 7
    others = [doc["order_id"] for key, doc in rows.items() if key not in (str(ids[1]), "new")]
    assert others.count(None) == 4 and others.count("o1") == 1


async def test_a_lookup_by_id_does_not_read_the_other_documents(
    tickets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = await seed(tickets)
    for _ in range(200):
        await tickets.insert_one({"n": -1})
    tested: list[Any] = []
    applies = mongomock.filtering.filter_applies

    def counting(filter: Any, document: Any) -> bool:
        tested.append(document["_id"])
        return bool(applies(filter, document))

    monkeypatch.setattr("mongomock.filtering.filter_applies", counting)
    monkeypatch.setattr("mongomock.collection.filter_applies", counting)

    assert (await tickets.find_one({"_id": ids[3]}))["n"] == 3
    await tickets.update_one({"_id": ids[4]}, {"$set": {"n": 40}})

    assert set(tested) <= {ids[3], ids[4]}


async def test_expired_documents_still_go_away(tickets: Any) -> None:
    await tickets.create_index("gone_at", expireAfterSeconds=0)
    await tickets.insert_one({"_id": "old", "gone_at": datetime.now(UTC) - timedelta(seconds=1)})
    await tickets.insert_one({"_id": "kept", "gone_at": datetime.now(UTC) + timedelta(hours=1)})

    async def expired_gone() -> bool:
        return await tickets.find_one({"_id": "old"}) is None

    await wait_until(
        expired_gone,
        timeout=embedded_store.TTL_MONITOR_SECONDS + 5,
        message="the expired document is still there",
    )
    assert await tickets.find_one({"_id": "kept"}) is not None


async def test_a_limited_sorted_page_is_the_head_of_the_whole_sorted_answer(tickets: Any) -> None:
    for number in range(30):
        await tickets.insert_one({"_id": number, "n": number % 7, "order_id": None})
    sort = [("n", -1), ("_id", 1)]

    every = await tickets.find({"order_id": None}).sort(sort).to_list(None)
    first = await tickets.find({"order_id": None}).sort(sort).limit(4).to_list(None)
    later = await tickets.find({"order_id": None}).sort(sort).skip(4).limit(4).to_list(None)
    one = await tickets.find_one({"order_id": None}, sort=sort)

    assert len(every) == 30
    assert first == every[:4] and later == every[4:8] and one == every[0]
    assert [doc["n"] for doc in every] == sorted((doc["n"] for doc in every), reverse=True)


async def test_a_collection_named_twice_is_one_object_that_still_sees_a_drop() -> None:
    db = embedded_store.client()["store_test"]
    kept = db["tickets"]
    await kept.insert_one({"_id": 1, "n": 1})

    assert db["tickets"] is kept
    assert db["other"] is not kept
    await db.drop_collection("tickets")
    assert await kept.count_documents({}) == 0
    await db["tickets"].insert_one({"_id": 2, "n": 2})
    assert await kept.find_one({}, {"_id": 0}) == {"n": 2}
    assert [
        doc["_id"] async for doc in embedded_store.client()["store_test"]["tickets"].find()
    ] == []
