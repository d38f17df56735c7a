"""The embedded store's TTL monitor removes what mongomock's own would, and reads only what has
expired: seeded random writes, deletes and passes at moving times, over dates, lists of dates,
values that never expire and TTL indexes mongomock ignores, compared pass by pass."""

import random
from datetime import datetime, timedelta
from typing import Any

import mongomock
import pytest
from mongomock.store import CollectionStore

from common import embedded_store

NOW = datetime(2026, 6, 1, 12, 0, 0)


def random_value(rng: random.Random) -> Any:
    moment = NOW + timedelta(seconds=rng.randint(-120, 120), milliseconds=rng.randint(0, 999))
    return rng.choice(
        [
            moment,
            moment,
            moment,
            [moment, NOW + timedelta(seconds=rng.randint(-120, 120))],
            [],
            [None, moment],
            ["x", moment],
            None,
            "x",
            5,
            {"at": moment},
        ]
    )


def random_document(rng: random.Random, number: int) -> dict[str, Any]:
    document: dict[str, Any] = {"_id": number}
    for field in ("at", "other", "deep"):
        if rng.random() < 0.8:
            document[field] = random_value(rng)
    if rng.random() < 0.3:
        document["deep"] = {"at": random_value(rng)}
    return document


@pytest.fixture(autouse=True)
def passes_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pass on access (the store's own, at most once a second): each test runs its own."""
    embedded_store.install()
    monkeypatch.setattr(embedded_store, "TTL_MONITOR_SECONDS", float("inf"))


def pass_of(collection: Any, own: bool) -> None:
    store = collection._store
    if own:
        CollectionStore._remove_expired_documents.__wrapped__(store)  # type: ignore[attr-defined]
    else:
        store._gittix_last_expiry = float("-inf")  # due now
        CollectionStore._remove_expired_documents(store)


def ids(collection: Any) -> list[Any]:
    return sorted(document["_id"] for document in collection.find({}, {"_id": 1}))


@pytest.mark.parametrize("seed", range(16))
def test_a_pass_removes_what_mongomock_s_would(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    database = mongomock.MongoClient()["expiry"]
    fast, plain = database[f"fast{seed}"], database[f"plain{seed}"]
    indexes: list[tuple[Any, dict[str, Any]]] = [
        ("other", {"expireAfterSeconds": 10}),
        ("deep.at", {"expireAfterSeconds": 0}),  # a path: mongomock never finds it
        ([("at", 1), ("other", 1)], {"expireAfterSeconds": 0}),  # compound: ignored
    ]
    chosen = [("at", {"expireAfterSeconds": rng.choice([0, 30, 60])})]
    for key, options in chosen + rng.sample(indexes, rng.randint(0, len(indexes))):
        for collection in (fast, plain):
            collection.create_index(key, **options)
    now = [NOW]
    monkeypatch.setattr(mongomock, "utcnow", lambda: now[0])
    removed = 0
    for number in range(400):
        roll = rng.random()
        document = random_document(rng, number)
        known = ids(fast)
        if roll < 0.5 or not known:
            for collection in (fast, plain):
                collection.insert_one(dict(document))
        elif roll < 0.75:
            target, field = rng.choice(known), rng.choice(["at", "other"])
            value = random_value(rng)
            for collection in (fast, plain):
                collection.update_one({"_id": target}, {"$set": {field: value}})
        elif roll < 0.85:
            target = rng.choice(known)
            for collection in (fast, plain):
                collection.delete_one({"_id": target})
        else:
            now[0] += timedelta(seconds=rng.randint(0, 40))
            before = len(known)
            pass_of(fast, own=False)
            pass_of(plain, own=True)
            assert ids(fast) == ids(plain), (seed, number)
            removed += before - len(ids(fast))
    assert removed > 20  # passes did remove documents: not a comparison of two no-ops


def test_a_pass_reads_only_the_documents_that_have_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mongomock, "utcnow", lambda: NOW)
    collection = mongomock.MongoClient()["expiry"]["many"]
    collection.create_index("ended_at", expireAfterSeconds=60)
    collection.insert_many(
        [{"_id": number, "ended_at": NOW - timedelta(seconds=number)} for number in range(2000)]
        + [{"_id": f"pending{number}"} for number in range(2000)]
    )
    checked: list[Any] = []
    own_check = CollectionStore._value_meets_expiry

    def counted(self: Any, value: Any, expiry: int, now: datetime) -> bool:
        checked.append(value)
        return bool(own_check(self, value, expiry, now))

    monkeypatch.setattr(CollectionStore, "_value_meets_expiry", counted)
    # The oldest ended 1,999 s before NOW: at NOW - 1,940 s nothing ended 60 s ago yet.
    monkeypatch.setattr(mongomock, "utcnow", lambda: NOW - timedelta(seconds=1940))
    pass_of(collection, own=False)
    assert collection.count_documents({}) == 4000
    assert len(checked) == 1  # the oldest, found not expired: nothing else read
    monkeypatch.setattr(mongomock, "utcnow", lambda: NOW + timedelta(seconds=50))
    checked.clear()
    pass_of(collection, own=False)
    # Those that ended 10 s or more before NOW go; the ten others and the pending ones stay.
    assert collection.count_documents({}) == 2010
    assert len(checked) == 1990 + 1
