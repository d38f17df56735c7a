"""Each test's own database: on the MongoDB at MONGO_URL when set, else mongomock-motor's store."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from gittix_testing.waiting import within

DROP_SECONDS = 10.0
# A MONGO_URL nobody answers fails the test in seconds instead of PyMongo's default 30.
SERVER_SELECTION_MS = 5_000
NAME_PREFIX = "gittix_test_"


@asynccontextmanager
async def own_database(mongo_url: str | None) -> AsyncIterator[Any]:
    """A database nobody else uses, gone afterwards.

    With a URL: a uniquely named database on that server (suites running side by side, or a
    crashed run's leftovers, never meet), reached with PyMongo's async client exactly as the
    services reach theirs, and dropped on the way out. Without: a fresh in-memory mongomock one.
    """
    if mongo_url is None:
        from common.embedded_store import client as embedded_client

        yield embedded_client()["test"]
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=SERVER_SELECTION_MS
    )
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:20]}"
    try:
        yield client[name]
    finally:
        async with within(DROP_SECONDS, f"dropping the test database {name} hung"):
            try:
                await client.drop_database(name)
            finally:
                await client.close()


class CountingReads:
    """A collection as some code is given it, counting the reads (find, find_one) made through
    it; every other attribute is the collection's own."""

    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def find(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self._collection.find(*args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self._collection.find_one(*args, **kwargs)
