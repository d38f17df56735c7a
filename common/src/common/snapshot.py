"""A service's read-only state snapshot for the consistency checker (`make verify`).

Each data service's repository has a `snapshot(db)` that reads what the checker compares (its
records, its replicas, their versions), never secrets or personal data: an email is shown only
as its SHA-256, so both copies of it can still be compared. The route serves it as JSON on the
service's own port at INTERNAL_SNAPSHOT_PATH; no public route (make up's entry point, the
Kubernetes ingress) leads there, since every public prefix is under /api/ or is the client's.
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bson import ObjectId
from fastapi import APIRouter, Request

from common.mongo import Database

INTERNAL_SNAPSHOT_PATH = "/internal/snapshot"

# collection name -> its documents, JSON-safe (ids and dates as strings)
Snapshot = dict[str, list[dict[str, Any]]]
SnapshotReader = Callable[[Database], Awaitable[Snapshot]]


def email_digest(email: str) -> str:
    """How a snapshot shows an email: comparable between services, not readable."""
    return hashlib.sha256(email.strip().casefold().encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """A stored value as JSON: ObjectIds and datetimes as strings, the rest as it is."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


async def read_collection(
    db: Database, name: str, fields: tuple[str, ...], *, count_outbox: bool = False
) -> list[dict[str, Any]]:
    """Every document of a collection with only `fields` (and `_id`), JSON-safe.

    `count_outbox` adds `outbox_pending`: how many of the document's events the relay has not
    published yet (a live system has a few for a moment; a stuck relay shows them growing).
    """
    projection: dict[str, Any] = {name: 1 for name in fields}
    if count_outbox:
        projection["outbox.id"] = 1
    documents = []
    async for document in db[name].find({}, projection):
        shown = {key: json_safe(document.get(key)) for key in ("_id", *fields)}
        if count_outbox:
            shown["outbox_pending"] = len(document.get("outbox") or [])
        documents.append(shown)
    return documents


def snapshot_router(reader: SnapshotReader) -> APIRouter:
    """GET INTERNAL_SNAPSHOT_PATH: the service's snapshot (left out of the public OpenAPI)."""
    router = APIRouter(include_in_schema=False)

    @router.get(INTERNAL_SNAPSHOT_PATH)
    async def snapshot(request: Request) -> Snapshot:
        return await reader(request.app.state.db)

    return router
