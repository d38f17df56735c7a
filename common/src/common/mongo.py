"""Mongo helpers: the one place a service gets its database, ObjectId parsing, JSON `id`."""

import logging
from typing import Annotated, Any

from bson import ObjectId
from bson.errors import InvalidId
from fastapi import Depends, Request
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from common.domain_errors import Invalid, NotFound
from common.settings import ServiceSettings

log = logging.getLogger("common.mongo")

# A stored document as PyMongo returns it; repositories give their own documents TypedDicts.
Document = dict[str, Any]
# PyMongo's async API. Tests and the embedded store pass mongomock-motor's stand-in, which has
# the same methods without being the same class (it is untyped, so it type-checks as these).
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


class DatabaseHandle:
    """Owns the client behind a service's database; close() on shutdown."""

    def __init__(self, database: Database, client: Any | None = None) -> None:
        self.database = database
        self._client = client

    @classmethod
    def connect(cls, settings: ServiceSettings) -> "DatabaseHandle":
        if settings.mongo_url:
            client: Any = AsyncMongoClient(settings.mongo_url, tz_aware=True)
            return cls(client[settings.database_name], client)
        from common import embedded_store

        log.warning(
            "MONGO_URL is not set: using the embedded in-memory store; data is lost on exit"
        )
        client = embedded_store.client()
        return cls(client[settings.database_name], client)

    async def ping(self) -> bool:
        try:
            await self.database.command("ping")
        except Exception:
            return False
        return True

    async def close(self) -> None:
        if self._client is not None and isinstance(self._client, AsyncMongoClient):
            await self._client.close()


def parse_object_id(value: str, *, field: str = "id", missing_is_404: bool = False) -> ObjectId:
    """An ObjectId from its hex string; a malformed one is 400 (or 404 for path ids)."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        if missing_is_404:
            raise NotFound() from None
        raise Invalid(f"{field} must be a valid id", field=field) from None


async def get_database(request: Request) -> Database:
    # A coroutine so FastAPI runs it on the event loop, not on a worker thread.
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(get_database)]
