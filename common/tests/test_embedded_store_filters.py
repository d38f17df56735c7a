"""The embedded store's quick filter test gives mongomock's own answer: seeded random filters of
the shapes it answers itself (and others, which it hands to mongomock) against random
documents with missing fields, arrays, sub-documents and values of other types."""

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId
from mongomock import filtering

from common import embedded_filters, embedded_store

OIDS = [ObjectId() for _ in range(2)]
# Naive (as the store keeps them) and one aware, around one instant.
DATES = [
    datetime(2026, 1, 1, 12, 0, 0),
    datetime(2026, 1, 1, 12, 0, 0, 1000),
    datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC),
]
FIELDS = ["a", "b", "_id"]


def random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            "x",
            "y",
            "",
            True,
            False,
            None,
            0,
            1,
            1.0,
            OIDS[0],
            OIDS[1],
            *DATES,
            -1,
            "xa",
            ["x", "y"],
            ["y"],
            [True],
            [1, 2],
            [1, 1.0],
            [],
            {"id": "e1"},
            {"other": 1},
            [{"id": "e1"}, {"other": 1}],
            [{"other": 1}],
            ["x", {"id": "e2"}],
        ]
    )


def random_document(rng: random.Random) -> dict[str, Any]:
    document = {field: random_value(rng) for field in FIELDS if rng.random() < 0.7}
    if rng.random() < 0.6:
        document["outbox"] = rng.choice(
            [
                [],
                [{"id": "e1"}],
                [{"id": "e1"}, {"x": 2}],
                [{"x": 1}],
                {"id": "e"},
                {"x": 1},
                "s",
                None,
            ]
        )
    return document


def random_condition(rng: random.Random) -> Any:
    operand = rng.choice(["x", "y", True, False, OIDS[0], 0, 1, 2, None, ["x"], *DATES])
    return rng.choice(
        [
            operand,
            {"$eq": operand},
            {"$ne": operand},
            {"$exists": rng.choice([True, False, 1])},
            {"$gt": operand},
            {"$gte": operand},
            {"$lt": operand},
            {"$lte": operand},
            {"$in": [operand]},
        ]
    )


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    filter: dict[str, Any] = {}
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.15:
            filter["outbox.id"] = {"$exists": rng.choice([True, False])}
        elif roll < 0.2:
            filter[rng.choice(["outbox.0", "a.id", "outbox.id.x"])] = {"$exists": True}
        elif roll < 0.3 and depth == 0:
            filter["$and"] = [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 2))]
        else:
            filter[rng.choice(FIELDS)] = random_condition(rng)
    return filter


def outcome(test: Callable[[], bool]) -> bool | str:
    """The answer, or the error raised (mongomock refuses to order a naive and an aware date)."""
    try:
        return test()
    except Exception as error:
        return type(error).__name__


@pytest.mark.parametrize("seed", range(12))
def test_the_quick_filter_test_gives_mongomock_s_answer(seed: int) -> None:
    rng = random.Random(seed)
    answered = 0
    for _ in range(600):
        filter, document = random_filter(rng), random_document(rng)
        expected = outcome(lambda: bool(filtering.filter_applies(filter, document)))  # noqa: B023
        got = outcome(lambda: embedded_store._applies(filter, document))  # noqa: B023
        assert got == expected, (filter, document)
        answered += embedded_filters.quick_match(filter, document) is not None
    # The quick path answered a good share itself: otherwise this compared mongomock with itself.
    assert answered > 100
