"""The embedded store (`make up` without MONGO_URL, and the tests): mongomock, minus its scans.

mongomock answers every query by testing every document of the collection, so a write found
by `_id` costs O(documents), a page of a list costs a filter and a sort of every document, and
a collection with a TTL index re-checks every document for expiry on each access. Small changes
make the queries the services make cost what they cost on MongoDB with its indexes:

- a filter that names `_id` by plain equality (or `$eq`, or `$in`) reads those documents from
  the store's dict, then applies the whole filter to them as mongomock always does (so the
  answer is the same, only the candidates are fewer);
- a filter that names the leading fields of a declared index by plain equality reads only the
  documents with those values (a bucket of an ordering with no sort, in the store's order), then
  applies the whole filter to them (`_equality_bucket`);
- a cursor with a sort and a limit whose sort a declared index serves (the index's fields are
  fields the filter names by plain equality, then the sort's fields) walks the documents in
  that order and applies the whole filter to each, stopping once the page is full (see
  `_Ordering`); `find_one` is a cursor with a limit of one; a page after a position (the next
  page of common.pagination) starts its walk at that position (`_Ordering.seek_key`) rather
  than reading every earlier document again;
- a cursor with a limit copies only the documents it returns (mongomock copied, and made
  timezone-aware, every matching document before cutting the page), in one pass
  when it returns them whole or with top-level fields included or excluded (`projected_page`,
  also used by find_one_and_update);
- expired documents are removed at most once per `TTL_MONITOR_SECONDS` per collection instead
  of on every access, and a removal reads only the expired documents, in the order of the
  date that expires them (`_Expiries`; mongomock tests every document). MongoDB's own TTL
  monitor runs every 60 seconds, so nothing may rely on an expired document being gone
  sooner; the services never do;
- the unique-index check after each insert and update (which mongomock makes with a scan of
  the collection per unique index) reads only the documents whose indexed fields may hold the
  new document's values: a bucket of an ordering with no sort (`_unique_by_buckets`). This is
  what keeps one active order per ticket, so a test compares it with mongomock's check;
- an update of one document named by `_id` that sets, pushes to or pulls from top-level fields
  (the outbox's writes) builds the changed document without mongomock's deep copies
  (`common.embedded_updates`).
- per call, a lookup by `_id` takes the store's expiry check and read lock once for all its
  candidates (mongomock: for each `in` and each read), and mongomock's walk of every filter,
  update and document (datetimes to naive milliseconds) and mongomock-motor's (string-like
  fields to `str`) pass plain dicts, lists and scalars by type, leaving every other type to
  their own code (`_plain_patch`, `_plain_normalize`); the simple filters of the services'
  writes and partial indexes (equality on strings, ObjectIds, booleans and integers, `$eq`,
  `$ne`, also against an array of such values, `$exists`, and `$gt`/`$gte`/`$lt`/`$lte`
  between integers, strings or naive dates) are tested without mongomock's
  general filter machinery, with its answers (`quick_match`; anything else goes to
  `filter_applies`).

Answers are mongomock's own, in its order (ties in a sort keep the store's order), for every
valid query; anything these paths do not handle goes to mongomock's code. An invalid filter
still raises, but only once a document it is tested against reaches the invalid part (mongomock
tests every document). `install()` patches mongomock's classes once; it is idempotent and called
by `client()`. The store is used from one thread (each service's event loop; the wire-protocol
test server's loop); the orderings change under mongomock's own store lock all the same.
"""

import functools
import heapq
import itertools
import time
import types
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from mongomock import DuplicateKeyError, filtering, helpers
from mongomock.filtering import resolve_sort_key

from common.embedded_copies import SHARED, projected_page
from common.embedded_filters import quick_match
from common.embedded_updates import id_candidates

TTL_MONITOR_SECONDS = 1.0
_EPOCH = datetime(1970, 1, 1)  # stored dates are naive UTC

_installed = False
_reusing = False

# The bucket of documents whose equality fields hold something other than a plain scalar (an
# array, a sub-document, a date...): they may match any value, so every walk reads them too.
_ANY_VALUE = object()

Element = tuple[tuple[Any, ...], int, Any]  # (sort key, position in the store, store key)


def _bucket_value(value: Any) -> Any:
    """What a document's value is bucketed by: itself when mongomock matches it by Python
    equality alone (so values it matches hash alike), else `_ANY_VALUE`. A missing field is
    None: both match `{field: None}`."""
    if value is None or isinstance(value, str | int | float | ObjectId):
        return value
    return _ANY_VALUE


def _ascending(flag: int, value: Any) -> tuple[Any, ...] | None:
    """`value` as mongomock's sort compares it (its flag for empty arrays, BSON type order, then
    the value), as a tuple Python compares natively; None for what mongomock does not order
    totally (NaN, aware dates, arrays of arrays, documents...)."""
    if value is None:
        return (flag, 5, 0)
    if isinstance(value, bool):
        return (flag, 40, int(value))
    if isinstance(value, int | float):
        return None if value != value else (flag, 10, value)
    if isinstance(value, str):
        return (flag, 15, value)
    if isinstance(value, ObjectId):
        return (flag, 35, value.binary)
    if isinstance(value, datetime) and value.tzinfo is None:
        return (flag, 45, value - _EPOCH)
    return None


def _descending(part: tuple[Any, ...]) -> tuple[Any, ...]:
    """An ascending part (above) turned so that Python's order of it is the reverse."""
    flag, rank, value = part
    if rank == 15:
        # Each code point reversed, and a shorter string (a prefix) now after the longer one.
        turned: Any = (*(-ord(character) for character in value), 1)
    elif rank == 35:
        turned = -int.from_bytes(value, "big")
    else:
        turned = -value  # a number, 0 for null, or a timedelta
    return (-flag, -rank, turned)


class _Ordering:
    """A collection's documents in one sort order, split by the values of some equality fields.

    Each bucket is a sorted list of (sort key, position in the store, store key): the position
    breaks ties as mongomock's stable sort of the store's documents does. A walk reads the
    bucket of the filter's values and the bucket of documents that may match any value, merged.
    Documents whose sort values mongomock does not order totally are counted in `unordered`;
    while there are any, the ordering declines and mongomock sorts. With a `partial` filter
    (a partial index's), it holds only the documents that filter matches.
    """

    def __init__(
        self,
        prefix: tuple[str, ...],
        sort: tuple[tuple[str, int], ...],
        partial: Mapping[str, Any] | None = None,
    ) -> None:
        self.prefix = prefix
        self.sort = sort
        self.partial = partial
        self.buckets: dict[Any, list[Element]] = {}
        self.entries: dict[Any, tuple[Any, Element]] = {}
        self.unordered: set[Any] = set()
        # Documents with an array in a sort field: ordered by one element, matched by any, so a
        # walk may not skip past them (see `walk`'s `after`).
        self.arrays: set[Any] = set()

    def _note_arrays(self, key: Any, document: Mapping[str, Any]) -> None:
        if any(isinstance(document.get(field), list | tuple) for field, _ in self.sort):
            self.arrays.add(key)
        else:
            self.arrays.discard(key)

    def _bucket(self, document: Mapping[str, Any]) -> Any:
        values = []
        for field in self.prefix:
            value = _bucket_value(document.get(field))
            if value is _ANY_VALUE:
                return _ANY_VALUE
            values.append(value)
        return tuple(values)

    def _key(self, document: Mapping[str, Any]) -> tuple[Any, ...] | None:
        parts: list[Any] = []
        for field, direction in self.sort:
            if "." in field:
                flag, wrapped = resolve_sort_key(field, document)
                value = wrapped.obj
            else:  # what resolve_sort_key gives for a top-level field, without its detour
                value = document.get(field)
                flag = 1
                if isinstance(value, list | tuple):
                    flag, value = (1, value[0]) if value else (0, None)
            part = _ascending(flag, value)
            if part is None:
                return None
            parts.append(part if direction > 0 else _descending(part))
        return tuple(parts)

    def fill(self, documents: Mapping[Any, Any], positions: Mapping[Any, int]) -> None:
        """Order every document of the store (one sort, instead of an insertion each)."""
        for key, document in documents.items():
            if not self._holds(document):
                continue
            self._note_arrays(key, document)
            sort_key = self._key(document)
            if sort_key is None:
                self.unordered.add(key)
                continue
            bucket = self._bucket(document)
            element: Element = (sort_key, positions[key], key)
            self.buckets.setdefault(bucket, []).append(element)
            self.entries[key] = (bucket, element)
        for elements in self.buckets.values():
            elements.sort()

    def _holds(self, document: Mapping[str, Any]) -> bool:
        return self.partial is None or _applies(self.partial, document)

    def put(self, key: Any, document: Mapping[str, Any], position: int) -> None:
        if not self._holds(document):
            self.remove(key)
            return
        self._note_arrays(key, document)
        sort_key = self._key(document)
        if sort_key is None:
            self.remove(key)
            self.unordered.add(key)
            return
        self.unordered.discard(key)
        bucket = self._bucket(document)
        old = self.entries.get(key)
        if old is not None:
            if old[0] == bucket and old[1][0] == sort_key:
                return
            self._take_out(*old)
        element: Element = (sort_key, position, key)
        insort(self.buckets.setdefault(bucket, []), element)
        self.entries[key] = (bucket, element)

    def remove(self, key: Any) -> None:
        self.unordered.discard(key)
        self.arrays.discard(key)
        old = self.entries.pop(key, None)
        if old is not None:
            self._take_out(*old)

    def _take_out(self, bucket: Any, element: Element) -> None:
        elements = self.buckets[bucket]
        del elements[bisect_left(elements, element)]
        if not elements:
            del self.buckets[bucket]

    def walk(self, values: tuple[Any, ...], after: tuple[Any, ...] | None = None) -> Iterator[Any]:
        """The store keys of the documents the filter's equality `values` may match, in order;
        with `after` (a sort key), only those whose sort key comes after it."""
        lists = [self.buckets.get(values, [])]
        if self.prefix:
            lists.append(self.buckets.get(_ANY_VALUE, []))
        if after is not None:
            # Past every element whose key is `after` or earlier: (after, inf) sorts after them.
            bound = (after, float("inf"))
            lists = [elements[bisect_right(elements, bound) :] for elements in lists]
        lists = [elements for elements in lists if elements]
        if not lists:
            return
        merged: Iterable[Element] = lists[0] if len(lists) == 1 else heapq.merge(*lists)
        for _, _, key in merged:
            yield key

    def seek_key(self, filter: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """For a filter asking for what comes after a position in this ordering's sort (the
        pages of common.pagination: `{"$or": [{f: {"$lt": x}}, {f: x, g: {"$lt": y}}]}` for a
        sort on f and g descending, `$gt` ascending), the sort key of that position: every
        document up to it fails the filter, so a walk may start past it. None for any other
        filter, a sort on a dotted field, or while a document has an array in a sort field."""
        if len(self.sort) != 2 or self.arrays:
            return None
        (first, direction), (second, other) = self.sort
        if direction != other or "." in first or "." in second:
            return None
        operator = "$lt" if direction < 0 else "$gt"
        branches = filter.get("$or")
        if type(branches) is not list or len(branches) != 2:
            return None
        before, tie = branches
        if type(before) is not dict or type(tie) is not dict or list(before) != [first]:
            return None
        bound = before[first]
        if type(bound) is not dict or list(bound) != [operator] or set(tie) != {first, second}:
            return None
        position = bound[operator]
        tied = tie[second]
        if type(tied) is not dict or list(tied) != [operator] or tie[first] != position:
            return None
        if type(tie[first]) is not type(position):
            return None
        return self._key({first: position, second: tied[operator]})


class _Expiries:
    """A TTL index's documents by the date that expires them, so that a pass of the TTL monitor
    reads the expired documents only (mongomock reads every document of the collection).

    mongomock expires a document when its field is a date, or a list whose earliest date (its
    `_get_min_datetime_from_value`) is one, at least `expireAfterSeconds` ago; any other value
    never expires. Plain naive dates (what the store keeps) are kept in date order; a list or
    an aware date goes to `odd`, which every pass tests whole with mongomock's own check; a
    document whose field is anything else is not held at all.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.dated: list[tuple[datetime, int, Any]] = []
        self.entries: dict[Any, tuple[datetime, int, Any]] = {}
        self.odd: set[Any] = set()

    def _hold(self, key: Any, value: Any, position: int) -> tuple[datetime, int, Any] | None:
        """Note the document `key` by its field's `value`: its element for `dated` when the
        value is a plain date (to be placed by the caller), else None (an odd one is noted)."""
        if type(value) is datetime and value.tzinfo is None:
            element = self.entries[key] = (value, position, key)
            return element
        if isinstance(value, list | datetime):
            self.odd.add(key)
        return None

    def fill(self, documents: Mapping[Any, Any], positions: Mapping[Any, int]) -> None:
        """Hold every document of the store (one sort, instead of an insertion each)."""
        for key, document in documents.items():
            element = self._hold(key, document.get(self.field), positions[key])
            if element is not None:
                self.dated.append(element)
        self.dated.sort()

    def put(self, key: Any, document: Mapping[str, Any], position: int) -> None:
        value = document.get(self.field)
        held = self.entries.get(key)
        if held is not None and type(value) is datetime and held[0] == value:
            return  # the same date (its only change that matters here)
        self.remove(key)
        element = self._hold(key, value, position)
        if element is not None:
            insort(self.dated, element)

    def remove(self, key: Any) -> None:
        self.odd.discard(key)
        element = self.entries.pop(key, None)
        if element is not None:
            del self.dated[bisect_left(self.dated, element)]

    def expired(self, documents: Mapping[Any, Any], meets_expiry: Any) -> list[Any]:
        """The store keys of the documents `meets_expiry(value)` (mongomock's check) expires:
        the dated ones up to the first that has not expired (a later date expires later),
        and the odd ones each tested."""
        found = []
        for value, _, key in self.dated:
            if not meets_expiry(value):
                break
            found.append(key)
        found += [key for key in self.odd if meets_expiry(documents[key].get(self.field))]
        return found


class _Orderings:
    """A collection store's orderings (and TTL indexes' expiry orders), kept up to date by every
    write once one is used."""

    def __init__(self, documents: Mapping[Any, Any]) -> None:
        self.positions = {key: position for position, key in enumerate(documents)}
        self._next = itertools.count(len(self.positions))
        # (equality fields, sort, the partial filter's repr or None) -> its ordering
        self.by_shape: dict[tuple[Any, ...], _Ordering] = {}
        # a TTL index's field -> its documents by expiry date
        self.by_expiry: dict[str, _Expiries] = {}

    def put(self, key: Any, document: Mapping[str, Any]) -> None:
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = next(self._next)
        for ordering in self.by_shape.values():
            ordering.put(key, document, position)
        for expiries in self.by_expiry.values():
            expiries.put(key, document, position)

    def remove(self, key: Any) -> None:
        self.positions.pop(key, None)
        for ordering in self.by_shape.values():
            ordering.remove(key)
        for expiries in self.by_expiry.values():
            expiries.remove(key)

    def expiries(self, documents: Mapping[Any, Any], field: str) -> _Expiries:
        expiries = self.by_expiry.get(field)
        if expiries is None:
            expiries = self.by_expiry[field] = _Expiries(field)
            expiries.fill(documents, self.positions)
        return expiries

    def ordering(
        self,
        documents: Mapping[Any, Any],
        prefix: tuple[str, ...],
        sort: tuple[tuple[str, int], ...],
        partial: Mapping[str, Any] | None = None,
    ) -> _Ordering:
        shape = (prefix, sort, None if partial is None else repr(partial))
        ordering = self.by_shape.get(shape)
        if ordering is None:
            ordering = _Ordering(prefix, sort, partial)
            ordering.fill(documents, self.positions)
            self.by_shape[shape] = ordering
        return ordering


def _orderings(store: Any) -> _Orderings:
    orderings: _Orderings | None = store.__dict__.get("_gittix_orderings")
    if orderings is None:
        with store._rwlock.reader():
            orderings = _Orderings(store._documents)
        store._gittix_orderings = orderings
    return orderings


def _sort_fields(sort: Any) -> tuple[tuple[str, int], ...] | None:
    """A cursor's sort as ((field, 1 or -1), ...), or None for what only mongomock sorts."""
    if isinstance(sort, Mapping):
        items: Any = list(sort.items())
    elif isinstance(sort, list | tuple):
        items = sort
    else:
        return None
    fields: list[tuple[str, int]] = []
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 2:
            return None
        field, direction = item
        if not isinstance(field, str) or not field or field.startswith("$"):
            return None
        if type(direction) is not int or direction not in (1, -1):
            return None
        fields.append((field, direction))
    if not fields or len({field for field, _ in fields}) != len(fields):
        return None
    return tuple(fields)


def _plan(
    indexes: Mapping[str, Any], filter: Any, sort: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, ...], tuple[Any, ...]] | None:
    """The equality fields and their values of the declared index that serves this sort for
    this filter (the one with the most such fields), or None when none does."""
    if not isinstance(filter, Mapping):
        return None
    keys = [index.get("key") for index in indexes.values()]
    keys.append([("_id", 1)])  # MongoDB's own index on _id
    best: tuple[tuple[str, ...], tuple[Any, ...]] | None = None
    for key in keys:
        try:
            fields = [(field, direction) for field, direction in key]
        except (TypeError, ValueError):
            continue
        if any(type(direction) is not int or direction not in (1, -1) for _, direction in fields):
            continue  # text, hashed, geo: no order
        split = len(fields) - len(sort)
        if split < 0:
            continue
        tail = fields[split:]
        if [field for field, _ in tail] != [field for field, _ in sort]:
            continue
        directions = [direction for _, direction in tail]
        wanted = [direction for _, direction in sort]
        if directions != wanted and directions != [-direction for direction in wanted]:
            continue
        prefix = tuple(field for field, _ in fields[:split])
        if _equality_run(prefix, filter) == prefix:
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, tuple(filter[field] for field in prefix))
    return best


def _walk_page(cursor: Any, count: int) -> list[Any] | None:
    """The first `count` matching documents (stored, not copied) in the cursor's sort order, read
    along an ordering; None when no declared index serves the sort for this filter."""
    if not cursor._sort:
        return None
    sort = _sort_fields(cursor._sort)
    if sort is None:
        return None
    store = cursor.collection._store
    if store.is_empty:  # also removes the expired documents, as mongomock does on every read
        filtering.filter_applies(cursor._spec, {})  # mongomock validates the filter
        return []
    plan = _plan(store.indexes, cursor._spec, sort)
    if plan is None:
        return None
    prefix, values = plan
    orderings = _orderings(store)
    with store._rwlock.reader():
        documents = store._documents
        ordering = orderings.ordering(documents, prefix, sort)
        if ordering.unordered:
            return None
        found: list[Any] = []
        for key in ordering.walk(values, ordering.seek_key(cursor._spec)):
            document = documents[key]
            if _applies(cursor._spec, document):
                found.append(document)
                if len(found) >= count:
                    break
    return found


def _equality_bucket(store: Any, filter: Any) -> list[Any] | None:
    """The stored documents, in the store's order, that a filter naming the leading fields of a
    declared index by plain equality may match (a bucket of an ordering with no sort); None when
    no index's leading field is named so. The filter is still to be applied to each."""
    if not isinstance(filter, Mapping) or not filter:
        return None
    best: tuple[str, ...] = ()
    best_partial: Mapping[str, Any] | None = None
    for index in store.indexes.values():
        key = index.get("key") or ()
        prefix = _equality_run(
            (item[0] if isinstance(item, list | tuple) and item else None for item in key), filter
        )
        partial = index.get("partialFilterExpression")
        if not _implied(partial, filter):
            partial = None  # the bucket of every document still holds every match
        if len(prefix) > len(best) or (
            prefix and len(prefix) == len(best) and best_partial is None and partial is not None
        ):
            best, best_partial = prefix, partial
    if not best or store.is_empty:  # (is_empty also removes the expired documents)
        return None
    orderings = _orderings(store)
    with store._rwlock.reader():
        documents = store._documents
        ordering = orderings.ordering(documents, best, (), best_partial)
        return [documents[key] for key in ordering.walk(tuple(filter[f] for f in best))]


def _implied(partial: Any, filter: Mapping[str, Any]) -> bool:
    """Whether every document `filter` matches is in a partial index of `partial`: the partial
    filter is plain equalities that the filter names with equal values of the same type."""
    if not isinstance(partial, Mapping) or not partial:
        return False
    for field, value in partial.items():
        if not isinstance(field, str) or field.startswith("$") or not _plain(value):
            return False
        if field not in filter or type(filter[field]) is not type(value):
            return False
        if filter[field] != value:
            return False
    return True


def _equality_run(fields: Iterable[Any], filter: Mapping[str, Any]) -> tuple[str, ...]:
    """The leading `fields` that `filter` names by plain equality, up to the first it does not
    (or that is dotted, an operator, not a name)."""
    run: list[str] = []
    for field in fields:
        if not isinstance(field, str) or "." in field or field.startswith("$"):
            break
        if field not in filter or not _plain(filter[field]):
            break  # an operator, a regex, a date, a document: not a plain equality
        run.append(field)
    return tuple(run)


def _plain(value: Any) -> bool:
    """Whether mongomock matches a filter's `value` by Python equality alone (plus arrays that
    hold it), so that a bucket of documents with an equal value holds every match."""
    if isinstance(value, float) and value != value:
        return False  # NaN
    return value is None or isinstance(value, str | int | float | ObjectId)


def _unique_by_buckets(collection: Any, new_data: Mapping[str, Any]) -> bool:
    """mongomock's unique-index check of a just-stored document, reading only the documents
    whose indexed values may equal the new one's (a bucket of an ordering with no sort) instead
    of every document. Raises DuplicateKeyError as mongomock does; False (nothing checked) when
    an index or a value is one only mongomock's scan handles (a dotted field, or a value that is
    not a plain scalar)."""
    store = collection._store
    checks = []
    for index in store.indexes.values():
        if not index.get("unique"):
            continue
        fields = tuple(field for field, _ in index.get("key"))
        query: dict[str, Any] = {field: new_data.get(field) for field in fields}
        if _equality_run(fields, query) != fields:
            return False  # a dotted field, or a value that is not a plain scalar
        values = tuple(query.values())
        if index.get("sparse") and all(value is None for value in values):
            continue
        partial = index.get("partialFilterExpression")
        if partial is not None:
            query = {"$and": [partial, query]}
        checks.append((fields, values, query, partial))
    if not checks:
        return True
    orderings = _orderings(store)  # every write keeps them current, this one included
    with store._rwlock.reader():
        documents = store._documents
        for fields, values, query, partial in checks:
            # A document the partial filter does not match is never a duplicate.
            ordering = orderings.ordering(documents, fields, (), partial)
            matching = 0
            for candidate in ordering.walk(values):
                document = documents[candidate]
                # The new document itself is in the ordering only if it is in the index, and it
                # has its own values: it matches without a test.
                if document is new_data or _applies(query, document):
                    matching += 1
                    if matching > 1:
                        raise DuplicateKeyError("E11000 Duplicate Key Error", 11000)
    return True


def _store_key(document: Mapping[str, Any]) -> Any:
    value = document.get("_id")
    return helpers.hashdict(value) if isinstance(value, dict) else value


_MISSING = object()
# mongomock's and mongomock-motor's own walks, replaced by install() (a test compares them).
ORIGINAL_WALKS: dict[str, Any] = {}


def _applies(filter: Any, document: Any) -> bool:
    """mongomock's filter_applies, answered without it for the simple filters."""
    quick = quick_match(filter, document)
    if quick is None:
        return bool(filtering.filter_applies(filter, document))
    return quick


def _plain_patch(original: Any) -> Any:
    """mongomock's patch_datetime_awareness_in_document (run on every filter, update and
    document it is given), with plain dicts, lists and the common scalars walked or passed by
    type; anything else (datetimes, OrderedDicts, Timestamps, subclasses) goes to the original."""

    def patch(value: Any) -> Any:
        kind = type(value)
        if kind in SHARED:
            return value
        if kind is dict:
            return {key: patch(item) for key, item in value.items()}
        if kind is list or kind is tuple:
            return [patch(item) for item in value]
        return original(value)

    return patch


def _plain_normalize(original: Any) -> Any:
    """mongomock-motor's _normalize_strings (run on every filter): plain containers and scalars
    by type; anything else to the original, which knows beanie's string-like fields."""

    def normalize(value: Any) -> Any:
        kind = type(value)
        if kind in SHARED:
            return value
        if kind is dict:
            return {normalize(key): normalize(item) for key, item in value.items()}
        if kind is list:
            return [normalize(item) for item in value]
        if kind is tuple:
            return tuple(normalize(item) for item in value)
        return original(value)

    return normalize


def install() -> None:
    """Patch mongomock's collection and store (once)."""
    global _installed
    if _installed:
        return
    import mongomock
    from mongomock.collection import Collection, Cursor
    from mongomock.store import CollectionStore

    scan_documents = Collection._iter_documents

    @functools.wraps(scan_documents)
    def iter_documents(self: Any, filter: Any) -> Iterator[Any]:
        candidates = id_candidates(filter)
        store = self._store
        if candidates is None:
            bucket = _equality_bucket(store, filter)
            if bucket is None:
                return scan_documents(self, filter)  # type: ignore[no-any-return]
            return iter([doc for doc in bucket if _applies(filter, doc)])
        found = []
        seen = set()
        # One expiry check and one read lock for every candidate (mongomock's store takes both
        # for each `in` and each item read).
        store._remove_expired_documents()
        documents = store._documents
        with store._rwlock.reader():
            for value in candidates:
                key = helpers.hashdict(value) if isinstance(value, dict) else value
                try:
                    if key in seen:
                        continue
                    document = documents.get(key, _MISSING)
                except TypeError:  # unhashable: let mongomock decide
                    return scan_documents(self, filter)  # type: ignore[no-any-return]
                if document is _MISSING:
                    continue
                seen.add(key)
                if _applies(filter, document):
                    found.append((key, document))
        if len(found) > 1:  # in the store's order, as mongomock's scan yields them
            positions = _orderings(store).positions
            found.sort(key=lambda pair: positions[pair[0]])
        return iter([document for _, document in found])

    def set_document(self: Any, key: Any, document: Any) -> None:
        with self._rwlock.writer():
            self._documents[key] = document
            orderings = self.__dict__.get("_gittix_orderings")
            if orderings is not None:
                orderings.put(key, document)

    def delete_document(self: Any, key: Any) -> None:
        with self._rwlock.writer():
            del self._documents[key]
            orderings = self.__dict__.get("_gittix_orderings")
            if orderings is not None:
                orderings.remove(key)

    drop_store = CollectionStore.drop

    @functools.wraps(drop_store)
    def drop(self: Any) -> None:
        drop_store(self)
        self.__dict__.pop("_gittix_orderings", None)

    def reordering(apply: Any) -> Any:
        """mongomock updates a stored document in place: its orderings follow."""

        @functools.wraps(apply)
        def apply_and_reorder(self: Any, existing_document: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return apply(self, existing_document, *args, **kwargs)
            finally:
                store = self._store
                orderings = store.__dict__.get("_gittix_orderings")
                if orderings is not None:
                    key = _store_key(existing_document)
                    with store._rwlock.writer():
                        try:
                            stored = store._documents.get(key) is existing_document
                        except TypeError:  # an unhashable _id is never stored
                            stored = False
                        if stored:
                            orderings.put(key, existing_document)

        return apply_and_reorder

    remove_expired = CollectionStore._remove_expired_documents

    @functools.wraps(remove_expired)
    def remove_expired_now_and_then(self: Any) -> None:
        if not self._ttl_indexes:
            return
        now = time.monotonic()
        if now - getattr(self, "_gittix_last_expiry", -TTL_MONITOR_SECONDS) < TTL_MONITOR_SECONDS:
            return
        self._gittix_last_expiry = now
        for index in list(self._ttl_indexes.values()):
            expire_by_date(self, index)

    def expire_by_date(self: Any, index: Mapping[str, Any]) -> None:
        """mongomock's `_expire_documents` for one TTL index, reading only what has expired."""
        try:
            expiry = int(index["expireAfterSeconds"])
        except (ValueError, TypeError):
            self._expire_documents(index)  # mongomock ignores the index: so does it here
            return
        keys = list(index["key"])
        field = keys[0][0] if len(keys) == 1 else None
        if not isinstance(field, str) or "." in field:
            self._expire_documents(index)  # compound, or a path mongomock never finds
            return
        ttl_now = mongomock.utcnow()  # type: ignore[attr-defined]  # re-exported, untyped
        orderings = _orderings(self)
        with self._rwlock.reader():
            expiries = orderings.expiries(self._documents, field)
            expired = expiries.expired(
                self._documents, lambda value: self._value_meets_expiry(value, expiry, ttl_now)
            )
        for key in expired:
            del self[key]

    compute_results = Cursor._compute_results

    @functools.wraps(compute_results)
    def compute_page(self: Any, with_limit_and_skip: bool = False) -> Any:
        # Without a limit, only an unsorted answer (a buyer's held slots) is taken here: every
        # document matching goes, through the same filter and copy as a page's.
        if not with_limit_and_skip or (not self._limit and self._sort):
            return compute_results(self, with_limit_and_skip)
        key = (self._factory, self._skip, self._limit)
        if getattr(self, "_gittix_page_key", None) != key:
            count = self._skip + abs(self._limit) if self._limit else None
            collection = self.collection
            aware = collection.codec_options.tz_aware
            found = None if count is None else _walk_page(self, count)
            if found is None and not self._sort:  # what the factory would filter, uncopied
                found = list(itertools.islice(collection._iter_documents(self._spec), count))
            if found is None:
                # The factory yields copies one by one, after filtering and sorting.
                page = list(itertools.islice(self._factory(), count))[self._skip :]
            else:
                projected = projected_page(found[self._skip :], self._projection, aware)
                if projected is None:
                    page = [
                        collection._copy_only_fields(document, self._projection, dict)
                        for document in found[self._skip :]
                    ]
                else:
                    page, aware = projected, False  # made aware already
            if aware:
                page = [helpers.make_datetime_timezone_aware_in_document(doc) for doc in page]
            self._gittix_page = page
            self._gittix_page_key = key
        return self._gittix_page

    find_first = Collection.find_one

    @functools.wraps(find_first)
    def find_one(self: Any, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        # mongomock's find_one takes the head of the whole answer; a limit of one lets the
        # cursor stop at the first document (same answer).
        if len(args) < 3 and "limit" not in kwargs:
            kwargs["limit"] = 1
        return find_first(self, filter, *args, **kwargs)

    check_uniques = Collection._ensure_uniques

    @functools.wraps(check_uniques)
    def ensure_uniques(self: Any, new_data: Any) -> None:
        if not _unique_by_buckets(self, new_data):
            check_uniques(self, new_data)

    Collection._ensure_uniques = ensure_uniques  # type: ignore[method-assign]
    Cursor._compute_results = compute_page  # type: ignore[method-assign]
    Collection._iter_documents = iter_documents  # type: ignore[method-assign]
    Collection.find_one = find_one  # type: ignore[method-assign]
    Collection._apply_update_document = reordering(Collection._apply_update_document)  # type: ignore[method-assign]
    Collection._apply_update_pipeline = reordering(Collection._apply_update_pipeline)  # type: ignore[method-assign]
    CollectionStore.__setitem__ = set_document  # type: ignore[method-assign]
    CollectionStore.__delitem__ = delete_document  # type: ignore[method-assign]
    CollectionStore.drop = drop  # type: ignore[method-assign]
    CollectionStore._remove_expired_documents = remove_expired_now_and_then  # type: ignore[method-assign]
    from mongomock_motor import patches as motor_patches

    ORIGINAL_WALKS.update(
        patch=helpers.patch_datetime_awareness_in_document,
        normalize=motor_patches._normalize_strings,
    )
    helpers.patch_datetime_awareness_in_document = _plain_patch(ORIGINAL_WALKS["patch"])
    motor_patches._normalize_strings = _plain_normalize(ORIGINAL_WALKS["normalize"])
    _remember_versions()
    from common import embedded_updates

    embedded_updates.install()
    _installed = True


def _remember_versions() -> None:
    """mongomock compares pymongo's version with a constant on most calls (`version.parse(
    "4.0")`, up to one per field a `$set` writes): each parse is a few µs, about 20 µs of every
    order placed. A parsed version is immutable, so each constant is parsed once."""
    from mongomock import collection, database, mongo_client
    from packaging import version

    remembered = types.SimpleNamespace(parse=functools.cache(version.parse))
    for module in (collection, database, mongo_client):
        module.version = remembered  # type: ignore[attr-defined]


def client() -> Any:
    """A fresh in-memory mongomock-motor client with the patches installed."""
    from mongomock_motor import AsyncMongoMockClient  # development-only dependency

    install()
    _reuse_collections()
    return AsyncMongoMockClient(tz_aware=True)


def _reuse_collections() -> None:
    """`db[name]` gives the same collection object each time: mongomock-motor built a new one
    (and mongomock re-wrapped its internals) on every access, the services' `db[ORDERS]` per
    call. Dropping a collection empties its store in place, so a kept object stays right."""
    global _reusing
    if _reusing:
        return
    from mongomock_motor import AsyncMongoMockDatabase

    def collection(self: Any, name: str) -> Any:
        kept: dict[str, Any] = self.__dict__.setdefault("_gittix_collections", {})
        found = kept.get(name)
        if found is None:
            found = kept[name] = self.get_collection(name)
        return found

    AsyncMongoMockDatabase.__getitem__ = collection  # type: ignore[method-assign]
    _reusing = True
