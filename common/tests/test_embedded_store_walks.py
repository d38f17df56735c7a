"""The embedded store's walks of filters, updates and documents give mongomock's own values."""

import random
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId, Timestamp
from mongomock import helpers
from mongomock_motor import patches as motor_patches

from common import embedded_store


class Tagged(dict):  # type: ignore[type-arg]
    """A dict subclass, as SON and other mappings are."""


def random_value(rng: random.Random, depth: int) -> Any:
    scalars = [
        lambda: rng.choice(["", "a", "ticket", "ü"]),
        lambda: rng.randint(-5, 5),
        lambda: rng.random(),
        lambda: rng.choice([True, False, None]),
        lambda: ObjectId(),
        lambda: b"raw",
        lambda: Int64(rng.randint(0, 9)),
        lambda: Decimal128(Decimal("1.25")),
        lambda: Timestamp(rng.randint(1, 9), 1),
        lambda: datetime(2026, 11, 28, 8, 1, 2, rng.randint(0, 999_999), tzinfo=UTC),
        lambda: datetime(2026, 11, 28, 8, 1, 2, rng.randint(0, 999_999)),
        lambda: datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=timezone(timedelta(hours=-5))),
    ]
    if depth == 0 or rng.random() < 0.4:
        return rng.choice(scalars)()
    items = [(f"k{n}", random_value(rng, depth - 1)) for n in range(rng.randint(0, 4))]
    kind = rng.choice(["dict", "ordered", "tagged", "list", "tuple"])
    if kind == "dict":
        return dict(items)
    if kind == "ordered":
        return OrderedDict(items)
    if kind == "tagged":
        return Tagged(items)
    values = [value for _, value in items]
    return values if kind == "list" else tuple(values)


def shape(value: Any) -> Any:
    """The value with every type spelled out (an OrderedDict equals a dict, 1 equals 1.0)."""
    if isinstance(value, dict):
        return (type(value).__name__, [(key, shape(item)) for key, item in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [shape(item) for item in value])
    if isinstance(value, datetime):
        return ("datetime", value.isoformat())
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("seed", range(8))
def test_the_plain_walks_give_mongomock_s_own_values(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded_store.install()
    rng = random.Random(seed)
    values = [random_value(rng, depth=4) for _ in range(200)]
    patched = [shape(helpers.patch_datetime_awareness_in_document(v)) for v in values]
    normalized = [shape(motor_patches._normalize_strings(v)) for v in values]

    originals = embedded_store.ORIGINAL_WALKS
    monkeypatch.setattr(helpers, "patch_datetime_awareness_in_document", originals["patch"])
    monkeypatch.setattr(motor_patches, "_normalize_strings", originals["normalize"])
    assert patched == [shape(helpers.patch_datetime_awareness_in_document(v)) for v in values]
    assert normalized == [shape(motor_patches._normalize_strings(v)) for v in values]
