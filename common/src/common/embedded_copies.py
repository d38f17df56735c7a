"""Copies of stored documents as mongomock returns them, made in one pass: whole, or through a
projection of top-level fields; for common.embedded_store's reads and common.embedded_updates'
find_one_and_update."""

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from mongomock import helpers

# Immutable values: shared between the store and what it returns, never copied.
SHARED = frozenset({str, int, float, bool, type(None), bytes, ObjectId})


def copied(value: Any, aware: bool) -> Any:
    """What mongomock returns for a stored value read whole: its copy (dicts and lists anew,
    anything else `copy.copy`), with every date made UTC-aware when `aware` (the client's
    tz_aware); one pass instead of mongomock's two. Immutable scalars are shared, not copied."""
    kind = type(value)
    if kind in SHARED:
        return value
    if isinstance(value, dict):
        return {key: copied(item, aware) for key, item in value.items()}
    if isinstance(value, list):
        return [copied(item, aware) for item in value]
    if isinstance(value, datetime):
        return value.replace(tzinfo=helpers.utc) if aware else value
    if aware and isinstance(value, tuple):  # mongomock's copy keeps it; its aware pass lists it
        return [helpers.make_datetime_timezone_aware_in_document(item) for item in value]
    return copy.copy(value)


def _projection_plan(projection: Any) -> tuple[bool, frozenset[str], bool] | None:
    """(include, fields, keep _id) for a projection of top-level fields all included or all
    excluded, `_id` either way (the services' `{"outbox": 0}`, `{"buyer_slot": 1}`); None for
    any other, which mongomock's own code projects."""
    if type(projection) is not dict:
        return None
    keep_id = projection.get("_id", 1)
    flags = {flag for name, flag in projection.items() if name != "_id"}
    fields = frozenset(name for name in projection if name != "_id")
    if (
        len(flags) != 1
        or any(type(flag) not in (int, bool) for flag in (*flags, keep_id))
        or any(type(name) is not str or not name or "." in name or "$" in name for name in fields)
    ):
        return None
    return bool(flags.pop()), fields, bool(keep_id)


def _projected(
    document: Mapping[str, Any], plan: tuple[bool, frozenset[str], bool], aware: bool
) -> dict[str, Any] | None:
    """What mongomock's `_copy_only_fields` (then its aware pass, when `aware`) makes of
    `document` under `plan`, in one pass; None when only mongomock can tell (an `_id` that is
    not a plain value)."""
    include, fields, keep_id = plan
    if "_id" in document and type(document["_id"]) not in SHARED:
        return None
    if include:
        # mongomock: the included fields in the document's order, then `_id`.
        kept = {key: copied(value, aware) for key, value in document.items() if key in fields}
        kept.pop("_id", None)
        if keep_id and "_id" in document:
            kept["_id"] = document["_id"]
        return kept
    kept = {key: copied(value, aware) for key, value in document.items() if key not in fields}
    if not keep_id:
        kept.pop("_id", None)
    return kept


def projected_page(documents: list[Any], projection: Any, aware: bool) -> list[Any] | None:
    """The documents as mongomock's projection (none: whole copies) and its aware pass make
    them, or None when only mongomock can tell."""
    if projection is None:
        return [copied(document, aware) for document in documents]
    plan = _projection_plan(projection)
    if plan is None:
        return None
    page = []
    for document in documents:
        copy = _projected(document, plan, aware)
        if copy is None:
            return None
        page.append(copy)
    return page
