"""The embedded store's update of one document found by `_id`: mongomock's answer, less copying.

mongomock updates a document by deep-copying it first (to tell whether it changed and to roll
back a duplicate key), then running its general update machinery, which deep-copies an array
again for a `$pull`. The outbox writes twice per event (its entry pushed with the change, then
pulled once published), so on the embedded store that copying is most of an event's cost.

The updates the services make most are narrower: `update_one` (or `find_one_and_update`) of the
document a filter names by `_id`, changing top-level fields with `$set`, `$inc`, `$push`
(`$each`) and `$pull` (a condition on array elements that are documents). Those build the
changed document as a new dict (a shallow copy with the changed fields replaced) and store it in
place of the old one, with mongomock's own field setters, filter and unique-index check (skipped
when the update changes no field a unique index reads through its key or partial filter: the
outbox's pulls), so the stored result, the matched/modified counts and the errors are
mongomock's. An upsert that only sets top-level fields on insert (`$setOnInsert`) of a document
named by a plain `_id` (expiration's timers) inserts through mongomock's own insert, or leaves the
document it finds untouched, without copying it. Anything else (other upserts, `update_many`,
dotted or positional paths, other operators, a field named twice) is mongomock's own `_update`.

`find_one_and_update` (mongomock: a copy of the document found, the update, then a copy read
back by `_id`) updates the stored document it finds and copies it once (through mongomock's
own projection), unless it is given a sort, an upsert or a projection leaving out `_id`.
"""

import functools
from collections.abc import Callable, Mapping
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from common.embedded_copies import projected_page
from common.embedded_filters import quick_match

_OPERATORS = frozenset({"$set", "$inc", "$push", "$pull"})
# `_id` values an upsert's fast path takes: equal only to values of their own type.
_ID_TYPES = frozenset({str, ObjectId, int})

_installed = False


def id_candidates(filter: Any) -> list[Any] | None:
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


def _top_level(field: Any) -> bool:
    """Whether an update may write `field` as a plain top-level field: a name, not `_id`, not
    a path, an operator or one MongoDB refuses."""
    return (
        isinstance(field, str)
        and bool(field)
        and field != "_id"
        and "." not in field
        and not field.startswith("$")
        and "\0" not in field
    )


def _narrow(document: Any) -> bool:
    """Whether an update only sets, increments, pushes to or pulls from top-level fields, each
    field once."""
    if not isinstance(document, dict) or not document:
        return False
    fields_seen: set[str] = set()
    for operator, fields in document.items():
        if operator not in _OPERATORS or not isinstance(fields, dict) or not fields:
            return False
        for field, value in fields.items():
            if not _top_level(field) or field in fields_seen:
                return False
            fields_seen.add(field)
            if operator == "$push" and isinstance(value, dict):
                if set(value) != {"$each"} or not isinstance(value["$each"], list | tuple):
                    return False
            if operator == "$pull" and not isinstance(value, dict):
                return False
    return True


def _insert_only(spec: Any, document: Any) -> bool:
    """Whether an upsert names one document by a plain `_id` (a string, an ObjectId or an int)
    and only sets top-level fields when it inserts (expiration's timers)."""
    if type(spec) is not dict or list(spec) != ["_id"] or type(spec["_id"]) not in _ID_TYPES:
        return False
    if type(document) is not dict or list(document) != ["$setOnInsert"]:
        return False
    fields = document["$setOnInsert"]
    return type(fields) is dict and bool(fields) and all(_top_level(field) for field in fields)


def _result(collection: Any, **counts: Any) -> dict[str, Any]:
    """mongomock's raw result of an update: nothing matched, unless `counts` say otherwise."""
    return {
        "connectionId": collection.database.client._id,
        "err": None,
        "n": 0,
        "nModified": 0,
        "ok": 1,
        "upserted": None,
        "updatedExisting": False,
    } | counts


def _keeps_id(projection: Any) -> bool:
    """No projection, or one that keeps `_id` (mongomock reads the answer back by the `_id` it
    found; without it, by the filter again, which the update may no longer match)."""
    if projection is None or isinstance(projection, list | tuple):
        return True
    return isinstance(projection, Mapping) and bool(projection.get("_id", 1))


def _fields(projection: Any) -> Any:
    # mongomock's _copy_only_fields takes the projection apart and puts it back: a copy.
    return dict(projection) if isinstance(projection, Mapping) else projection


def _changed_fields(changes: Mapping[str, Any]) -> set[str]:
    """The top-level fields a narrow update changes."""
    return {field for fields in changes.values() for field in fields}


def _filter_fields(filter: Any) -> set[str]:
    """The top-level fields a (partial index's) filter reads."""
    found: set[str] = set()
    if isinstance(filter, Mapping):
        for field, condition in filter.items():
            if isinstance(field, str) and field.startswith("$"):
                for part in condition if isinstance(condition, list | tuple) else [condition]:
                    found |= _filter_fields(part)
            else:
                found.add(str(field).split(".")[0])
    return found


def _unique_fields(indexes: Mapping[str, Any]) -> set[str]:
    """The top-level fields any unique index reads, through its key or its partial filter: an
    update changing none of them cannot make a duplicate (the document's place in every unique
    index stays as it was when its own write was checked), so mongomock's check is skipped."""
    fields: set[str] = set()
    for index in indexes.values():
        if index.get("unique"):
            fields |= {str(field).split(".")[0] for field, _ in index.get("key", [])}
            fields |= _filter_fields(index.get("partialFilterExpression"))
    return fields


def install() -> None:
    """Patch mongomock's Collection._update (once); idempotent."""
    global _installed
    if _installed:
        return
    from mongomock import DuplicateKeyError, OperationFailure, helpers
    from mongomock.collection import Collection, _inc_updater, _set_updater
    from mongomock.filtering import filter_applies

    update = Collection._update

    def pulled(condition: Mapping[str, Any], element: Any) -> bool:
        # mongomock's $pull test for a condition that is a document. A condition the quick
        # filter answers (the relay's `{"id": ...}`) matches the element as a whole document only
        # if it matches it field by field.
        quick = quick_match(condition, element)
        if quick is not None:
            return quick
        try:
            if filter_applies(condition, element):
                return True
        except OperationFailure:
            pass
        return bool(filter_applies({"field": condition}, {"field": element}))

    def changed_copy(existing: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any] | None:
        """The document with the changes applied, as a new dict; None when only mongomock's
        update knows what to do (a push to a non-array, a pull from an array of scalars)."""
        changed = dict(existing)
        for operator, fields in changes.items():
            for field, value in fields.items():
                current = changed.get(field)
                if operator == "$set":
                    _set_updater(changed, field, value)
                elif operator == "$inc":
                    _inc_updater(changed, field, value)  # an error: mongomock's own (below)
                elif operator == "$push":
                    if field in changed and not isinstance(current, list):
                        return None
                    added = list(value["$each"]) if isinstance(value, dict) else [value]
                    changed[field] = [*(current or []), *added]
                elif isinstance(current, list):  # $pull; mongomock skips a non-array
                    if not all(isinstance(element, dict) for element in current):
                        return None
                    changed[field] = [element for element in current if not pulled(value, element)]
        return changed

    @functools.wraps(update)
    def update_by_id(
        self: Any,
        spec: Any,
        document: Any,
        upsert: bool = False,
        manipulate: bool = False,
        multi: bool = False,
        check_keys: bool = False,
        **options: Any,
    ) -> Any:
        def mongomock_update() -> Any:
            return update(self, spec, document, upsert, manipulate, multi, check_keys, **options)

        if manipulate or multi or check_keys or any(options.values()):
            return mongomock_update()
        if upsert:
            if not _insert_only(spec, document):
                return mongomock_update()
            return upsert_by_id(self, spec["_id"], document["$setOnInsert"])
        candidates = id_candidates(spec)
        if (
            candidates is None
            or len(candidates) != 1
            or isinstance(candidates[0], dict)
            or not _narrow(document)
        ):
            return mongomock_update()
        patched_spec = helpers.patch_datetime_awareness_in_document(spec)
        changes = helpers.patch_datetime_awareness_in_document(document)
        existing = next(iter(self._iter_documents(patched_spec)), None)
        if existing is None:
            return _result(self)
        return update_found(self, existing, changes, mongomock_update)

    def update_found(
        self: Any, existing: dict[str, Any], changes: Any, mongomock_update: Callable[[], Any]
    ) -> Any:
        """A narrow update (its dates made naive) of `existing`, a stored document."""
        result = _result(self)
        try:
            changed = changed_copy(existing, changes)
        except Exception:
            changed = None
        if changed is None:
            # mongomock's own behaviour, errors included (the stored document is untouched).
            return mongomock_update()
        result.update(n=1, updatedExisting=True)
        if changed == existing:
            return result
        store = self._store
        key = existing["_id"]
        store[key] = changed
        if not _unique_fields(store.indexes).isdisjoint(_changed_fields(changes)):
            try:
                self._ensure_uniques(changed)
            except DuplicateKeyError:  # rolled back, as mongomock does
                store[key] = existing
                raise
        result["nModified"] = 1
        return result

    def upsert_by_id(self: Any, key: Any, fields: dict[str, Any]) -> Any:
        """mongomock's upsert of `{"$setOnInsert": fields}` on `{"_id": key}`, without its
        copy of the document it finds (to tell that nothing changed) or of the one it builds."""
        fields = helpers.patch_datetime_awareness_in_document(fields)
        found = next(iter(self._iter_documents({"_id": key})), None)
        result = _result(self, n=1, updatedExisting=found is not None)
        if found is None:
            inserted: dict[str, Any] = {"_id": key}
            for field, value in fields.items():
                _set_updater(inserted, field, value)
            result["upserted"] = self._insert(inserted)
        return result

    find_and_modify = Collection._find_and_modify

    @functools.wraps(find_and_modify)
    def find_and_update(
        self: Any,
        query: Any,
        projection: Any = None,
        update: Any = None,
        upsert: bool = False,
        sort: Any = None,
        return_document: Any = ReturnDocument.BEFORE,
        session: Any = None,
        **kwargs: Any,
    ) -> Any:
        """mongomock's find_one_and_update reads the document twice more than it needs (a copy
        found, then a copy read back by `_id`); with no sort, upsert or removal, and a
        projection (if any) that keeps `_id`, the stored document found is updated by `_id`
        and copied once, through mongomock's own projection."""
        if (
            not isinstance(query, Mapping)
            or not _keeps_id(projection)
            or sort
            or upsert
            or session
            or kwargs
            or not update
        ):
            return find_and_modify(
                self, query, projection, update, upsert, sort, return_document, session, **kwargs
            )
        spec = helpers.patch_datetime_awareness_in_document(query)
        found = next(iter(self._iter_documents(spec)), None)
        if found is None:
            return None
        key = found["_id"]
        aware = self.codec_options.tz_aware

        def copied(document: Any) -> Any:
            fields = _fields(projection)
            fast = projected_page([document], fields, aware)
            if fast is not None:
                return fast[0]
            answer = self._copy_only_fields(document, fields, dict)
            return helpers.make_datetime_timezone_aware_in_document(answer) if aware else answer

        def apply() -> None:
            # The document found is the stored one: a narrow update is applied to it without
            # looking it up again by `_id`.
            if type(key) in _ID_TYPES and _narrow(update):
                changes = helpers.patch_datetime_awareness_in_document(update)
                update_found(self, found, changes, lambda: self._update({"_id": key}, update))
            else:
                self._update({"_id": key}, update)

        if return_document is ReturnDocument.AFTER:
            apply()
            return copied(self._store[helpers.hashdict(key) if isinstance(key, dict) else key])
        # Before the update changes it.
        answer = copied(found)
        apply()
        return answer

    Collection._update = update_by_id  # type: ignore[method-assign,assignment]
    Collection._find_and_modify = find_and_update  # type: ignore[method-assign]
    _installed = True
