"""The embedded store (`make up` without MONGO_URL, and the tests): mongomock, minus its scans.

mongomock answers every query by testing every document of the collection, so a write found
by `_id` costs O(documents), and a collection with a TTL index re-checks every document for
expiry on each access. Two small changes make the lookups the services make cost O(1):

- a filter that names `_id` by plain equality (or `$eq`, or `$in`) reads those documents from
  the store's dict, then applies the whole filter to them as mongomock always does (so the
  answer is the same, only the candidates are fewer);
- a cursor with a limit copies only the documents it returns (mongomock copied, and made
  timezone-aware, every matching document before cutting the page);
- expired documents are removed at most once per `TTL_MONITOR_SECONDS` per collection instead
  of on every access. MongoDB's own TTL monitor runs every 60 seconds, so nothing may rely on
  an expired document being gone sooner; the services never do.

Everything else is mongomock's own code. `install()` patches mongomock's classes once; it is
idempotent and called by `client()`.
"""

import itertools
import time
from collections.abc import Iterator, Mapping
from typing import Any

TTL_MONITOR_SECONDS = 1.0

_installed = False


def _id_candidates(filter: Any) -> list[Any] | None:
    """The `_id` values a filter can only match, or None when it does not say."""
    if not isinstance(filter, Mapping) or "_id" not in filter:
        return None
    value = filter["_id"]
    if isinstance(value, Mapping) and value and all(str(key).startswith("$") for key in value):
        if set(value) == {"$eq"}:
            return [value["$eq"]]
        if set(value) == {"$in"} and isinstance(value["$in"], list | tuple):
            if any(
                isinstance(item, Mapping | list) or hasattr(item, "pattern")
                for item in value["$in"]
            ):
                return None  # regexes and sub-documents: leave them to mongomock
            return list(value["$in"])
        return None
    if isinstance(value, list) or hasattr(value, "pattern"):
        return None  # an array or a regex matches other than by equality
    return [value]


def install() -> None:
    """Patch mongomock's collection and store (once)."""
    global _installed
    if _installed:
        return
    from mongomock import helpers
    from mongomock.collection import Collection, Cursor
    from mongomock.filtering import filter_applies
    from mongomock.store import CollectionStore

    scan_documents = Collection._iter_documents

    def iter_documents(self: Any, filter: Any) -> Iterator[Any]:
        candidates = _id_candidates(filter)
        if candidates is None:
            return scan_documents(self, filter)  # type: ignore[no-any-return]
        store = self._store
        found = []
        seen = set()
        for value in candidates:
            key = helpers.hashdict(value) if isinstance(value, dict) else value
            try:
                if key in seen or key not in store:
                    continue
            except TypeError:  # unhashable: let mongomock decide
                return scan_documents(self, filter)  # type: ignore[no-any-return]
            seen.add(key)
            document = store[key]
            if filter_applies(filter, document):
                found.append(document)
        return iter(found)

    remove_expired = CollectionStore._remove_expired_documents

    def remove_expired_now_and_then(self: Any) -> None:
        if not self._ttl_indexes:
            return
        now = time.monotonic()
        if now - getattr(self, "_gittix_last_expiry", -TTL_MONITOR_SECONDS) < TTL_MONITOR_SECONDS:
            return
        self._gittix_last_expiry = now
        remove_expired(self)

    compute_results = Cursor._compute_results

    def compute_page(self: Any, with_limit_and_skip: bool = False) -> Any:
        if not with_limit_and_skip or not self._limit:
            return compute_results(self, with_limit_and_skip)
        key = (self._factory, self._skip, self._limit)
        if getattr(self, "_gittix_page_key", None) != key:
            # The factory yields copies one by one, after filtering and sorting.
            page = list(itertools.islice(self._factory(), self._skip + abs(self._limit)))
            if self.collection.codec_options.tz_aware:
                page = [helpers.make_datetime_timezone_aware_in_document(doc) for doc in page]
            self._gittix_page = page[self._skip :]
            self._gittix_page_key = key
        return self._gittix_page

    Cursor._compute_results = compute_page  # type: ignore[method-assign]
    Collection._iter_documents = iter_documents  # type: ignore[method-assign]
    CollectionStore._remove_expired_documents = remove_expired_now_and_then  # type: ignore[method-assign]
    _installed = True


def client() -> Any:
    """A fresh in-memory mongomock-motor client with the patches installed."""
    from mongomock_motor import AsyncMongoMockClient  # development-only dependency

    install()
    return AsyncMongoMockClient(tz_aware=True)
