"""The embedded store's quick filter: mongomock's answer for the simple filters the services'
writes, partial indexes and the outbox's pulls use, without its general machinery (for
common.embedded_store's reads and unique checks and common.embedded_updates' `$pull`)."""

from collections.abc import Mapping
from datetime import datetime
from operator import ge, gt, le, lt
from typing import Any

from bson import ObjectId

_MISSING = object()
# Values whose equality mongomock and MongoDB both decide by Python's `==` when the document's
# value has the same exact type (so 1 == 1.0 == True, which Python says and BSON does not, never
# comes up: an int is compared with an int only).
_QUICK_TYPES = frozenset({str, ObjectId, bool, int})


_ORDERINGS = {"$gt": gt, "$gte": ge, "$lt": lt, "$lte": le}
_ORDERED_TYPES = frozenset({int, str, datetime})


def _quick_field(document: Mapping[str, Any], field: str, condition: Any) -> bool | None:
    """Whether one field's condition matches, for the shapes `quick_match` knows; None when
    only mongomock can tell."""
    value = document.get(field, _MISSING)
    if isinstance(value, list | tuple):
        return _quick_not_in(value, condition)  # an array matches by its elements
    if type(condition) in _QUICK_TYPES:
        if value is _MISSING:
            return False
        return condition == value if type(value) is type(condition) else None
    if type(condition) is not dict or len(condition) != 1:
        return None
    [(operator, operand)] = condition.items()
    if operator == "$exists" and type(operand) is bool:
        return (value is not _MISSING) is operand
    if operator in _ORDERINGS:
        # Between two values of one exact type that Python orders as BSON does (the rate limits'
        # window end, timers' due time); anything else, a missing field included, is mongomock's.
        if type(operand) not in _ORDERED_TYPES or type(value) is not type(operand):
            return None
        if type(value) is datetime and (value.tzinfo or operand.tzinfo):
            return None  # the store's dates are naive: an aware one is mongomock's to judge
        return bool(_ORDERINGS[operator](value, operand))
    if type(operand) not in _QUICK_TYPES:
        return None
    if operator == "$eq":
        return _quick_field(document, field, operand)
    if operator == "$ne":
        if value is _MISSING:
            return True
        return operand != value if type(value) is type(operand) else None
    return None


def _quick_not_in(array: Any, condition: Any) -> bool | None:
    """`{"$ne": v}` against an array (tickets' released orders): true when no element is `v`,
    for a list whose elements all have `v`'s exact type; None for anything else."""
    if type(array) is not list or type(condition) is not dict or len(condition) != 1:
        return None
    operand = condition.get("$ne", _MISSING)
    kind = type(operand)
    if kind not in _QUICK_TYPES or any(type(element) is not kind for element in array):
        return None
    return operand not in array


def _quick_exists(document: Mapping[str, Any], path: str, condition: Any) -> bool | None:
    """`{"a.b": {"$exists": bool}}` (the outbox's pending entries) when `a` is missing, a
    document or an array of documents; None otherwise."""
    if type(condition) is not dict or list(condition) != ["$exists"]:
        return None
    wanted = condition["$exists"]
    head, _, rest = path.partition(".")
    if type(wanted) is not bool or not head or not rest or "." in rest or rest.isdigit():
        return None
    value = document.get(head, _MISSING)
    if value is _MISSING:
        return not wanted
    if type(value) is dict:
        return (rest in value) is wanted
    if type(value) is list and all(type(element) is dict for element in value):
        # mongomock tests each element: "exists" when one has the field, "does not exist" when
        # the array is empty or one lacks it (MongoDB: when none has it; the outbox's entries
        # all have an id, where the two agree).
        if wanted:
            return any(rest in element for element in value)
        return not value or any(rest not in element for element in value)
    return None


def quick_match(filter: Any, document: Any) -> bool | None:
    """mongomock's answer for the simple filters the services' writes and partial indexes use
    (plain equality on str, ObjectId or bool values of the same type, `$eq`, `$ne`,
    `$exists`, a one-level `$exists` path into documents, `$and` of those), without its
    general machinery; None for anything else."""
    if type(filter) is not dict or type(document) is not dict:
        return None
    answer = True
    for field, condition in filter.items():
        if field == "$and":
            if type(condition) is not list or not condition:
                return None
            for part in condition:
                found = quick_match(part, document)
                if found is None:
                    return None
                answer = answer and found
            continue
        if type(field) is not str or not field or field.startswith("$"):
            return None
        if "." in field:
            found = _quick_exists(document, field, condition)
        else:
            found = _quick_field(document, field, condition)
        if found is None:
            return None
        answer = answer and found
    return answer
