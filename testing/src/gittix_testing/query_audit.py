"""Every filter and sort the services issue, checked against the indexes they declare.

The `database` fixture hands the service under test a `RecordingDatabase`: each query a
service module makes (not the test's own reads and seeds) is recorded with its shape, and at
the end of the test each is checked against the collection's indexes as MongoDB's planner
would use them: a query that no index can answer (a collection scan on a real MongoDB) fails
the test that issued it, naming the query and where it came from.

An index answers a query when its first key is constrained by the filter (equality, `$in`, a
range, `$exists: true`), a partial index's filter expression is part of the query, and every
sort key is in the index. An empty filter is a read of the whole collection on purpose (the
snapshot `make verify` compares) and is not a scan to avoid.
"""

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Operators that give an index bounds on their field.
BOUNDING = {"$eq", "$in", "$gt", "$gte", "$lt", "$lte", "$all", "$elemMatch"}
QUERY_METHODS = {
    "find",
    "find_one",
    "find_one_and_update",
    "find_one_and_delete",
    "find_one_and_replace",
    "update_one",
    "update_many",
    "replace_one",
    "delete_one",
    "delete_many",
    "count_documents",
    "distinct",
}


@dataclass(frozen=True)
class Query:
    collection: str
    method: str
    shape: str  # the filter with its values replaced, for the message
    filter: Mapping[str, Any]
    sort: tuple[str, ...]
    caller: str


@dataclass
class QueryLog:
    queries: list[Query] = field(default_factory=list)

    def record(
        self, collection: str, method: str, filter: Any, sort: Any, *, depth: int = 2
    ) -> None:
        frame = sys._getframe(depth)
        module = str(frame.f_globals.get("__name__", ""))
        if _is_test_code(module):
            return
        filter = dict(filter or {})
        self.queries.append(
            Query(
                collection,
                method,
                repr(_shape(filter)),
                filter,
                _sort_keys(sort),
                f"{module}:{frame.f_lineno}",
            )
        )


def _is_test_code(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest" or module.startswith("gittix_testing")


def _shape(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    return "?"


def _sort_keys(sort: Any) -> tuple[str, ...]:
    if not sort:
        return ()
    if isinstance(sort, str):
        return (sort,)
    if isinstance(sort, Mapping):
        return tuple(sort)
    return tuple(item[0] if isinstance(item, (list, tuple)) else str(item) for item in sort)


def _bounded_fields(filter: Mapping[str, Any]) -> set[str] | None:
    """The fields an index can seek on; None when the filter is an `$or` some branch of which
    no index could answer (checked by the caller per branch)."""
    fields: set[str] = set()
    for key, value in filter.items():
        if key == "$and":
            for part in value:
                fields |= _bounded_fields(part) or set()
        elif key.startswith("$"):
            continue
        elif isinstance(value, Mapping) and any(op.startswith("$") for op in value):
            if BOUNDING & set(value) or value.get("$exists") is True:
                fields.add(key)
        else:
            fields.add(key)
    return fields


def _partial_holds(partial: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(filter.get(key) == expected for key, expected in partial.items())


def index_answers(index: Mapping[str, Any], filter: Mapping[str, Any], sort: Sequence[str]) -> bool:
    keys = [key for key, _ in index["key"]]
    partial = index.get("partialFilterExpression")
    if partial is not None and not _partial_holds(partial, filter):
        return False
    if keys[0] not in (_bounded_fields(filter) or set()):
        return False
    return all(key in keys for key in sort)


def unindexed(query: Query, indexes: Sequence[Mapping[str, Any]]) -> bool:
    if not query.filter:
        return False
    branches = query.filter.get("$or")
    if branches is not None:
        rest = {key: value for key, value in query.filter.items() if key != "$or"}
        if any(index_answers(index, rest, query.sort) for index in indexes):
            return False
        return not all(
            any(index_answers(index, {**rest, **branch}, query.sort) for index in indexes)
            for branch in branches
        )
    return not any(index_answers(index, query.filter, query.sort) for index in indexes)


class RecordingCursor:
    """A find cursor that records the sort given to it later."""

    def __init__(self, cursor: Any, log: QueryLog, collection: str, filter: Any) -> None:
        self._cursor = cursor
        self._log = log
        self._collection = collection
        self._filter = filter
        self._recorded = False

    def sort(self, *args: Any, **kwargs: Any) -> "RecordingCursor":
        spec = args[0] if len(args) == 1 else [args] if args else kwargs.get("key_or_list")
        self._log.record(self._collection, "find", self._filter, spec)
        self._recorded = True
        self._cursor = self._cursor.sort(*args, **kwargs)
        return self

    def _ensure_recorded(self) -> None:
        if not self._recorded:
            self._recorded = True
            self._log.record(self._collection, "find", self._filter, None, depth=3)

    def limit(self, count: int) -> "RecordingCursor":
        self._cursor = self._cursor.limit(count)
        return self

    def skip(self, count: int) -> "RecordingCursor":
        self._cursor = self._cursor.skip(count)
        return self

    def __aiter__(self) -> Any:
        self._ensure_recorded()
        return self._cursor.__aiter__()

    async def to_list(self, *args: Any, **kwargs: Any) -> Any:
        self._ensure_recorded()
        return await self._cursor.to_list(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class RecordingCollection:
    def __init__(self, collection: Any, log: QueryLog) -> None:
        self._collection = collection
        self._log = log

    def find(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        cursor = self._collection.find(filter, *args, **kwargs)
        if "sort" in kwargs:
            self._log.record(self._collection.name, "find", filter, kwargs["sort"])
            return cursor
        return RecordingCursor(cursor, self._log, self._collection.name, filter)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if name not in QUERY_METHODS or name == "find":
            return attribute
        log = self._log
        collection = self._collection.name

        def recorded(first: Any = None, *args: Any, **kwargs: Any) -> Any:
            if name == "distinct":  # distinct(key, filter)
                log.record(collection, name, args[0] if args else kwargs.get("filter"), None)
            else:
                log.record(collection, name, first, kwargs.get("sort"))
            return attribute(first, *args, **kwargs)

        return recorded


class RecordingDatabase:
    """A database whose collections record the queries made through them."""

    def __init__(self, database: Any, log: QueryLog) -> None:
        self._database = database
        self.query_log = log

    def __getitem__(self, name: str) -> RecordingCollection:
        return RecordingCollection(self._database[name], self.query_log)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._database, name)
        if hasattr(attribute, "find_one_and_update"):
            return RecordingCollection(attribute, self.query_log)
        return attribute

    async def unindexed_queries(self) -> list[Query]:
        """Recorded queries no declared index of their collection answers."""
        indexes: dict[str, list[Mapping[str, Any]]] = {}
        found = []
        for query in self.query_log.queries:
            if query.collection not in indexes:
                info = await self._database[query.collection].index_information()
                # Every collection has the _id index, even before it exists.
                indexes[query.collection] = [{"key": [("_id", 1)]}, *info.values()]
            if unindexed(query, indexes[query.collection]):
                found.append(query)
        return found


def describe(queries: Sequence[Query]) -> str:
    unique = {(q.collection, q.method, q.shape, q.sort, q.caller) for q in queries}
    return "\n".join(
        f"  {collection}.{method}({shape}) sort={list(sort)} at {caller}"
        for collection, method, shape, sort, caller in sorted(unique)
    )
