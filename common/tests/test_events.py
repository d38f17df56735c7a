"""Event contracts: envelopes round-trip, and unknown fields or wrong types are rejected."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from common.events import (
    ALL_EVENTS,
    SUBJECT_PREFIX,
    Envelope,
    Event,
    EventParseError,
    OrderCreated,
    TicketPriceRef,
    parse_envelope,
)


def order_created_bytes() -> bytes:
    event = OrderCreated(
        id="o1",
        version=0,
        status="created",
        user_id="u1",
        expires_at=datetime(2026, 11, 26, 16, 0, 0, 123000, tzinfo=UTC),
        ticket=TicketPriceRef(id="t1", price=Decimal("19.99")),
    )
    return Envelope.wrap(event).to_bytes()


def test_envelope_carries_id_type_version_time_and_camel_case_data() -> None:
    raw = json.loads(order_created_bytes())

    assert set(raw) == {"id", "type", "schema_version", "occurred_at", "data"}
    assert raw["type"] == "OrderCreated" and raw["schema_version"] == 1
    assert raw["occurred_at"].endswith("Z")
    assert raw["data"]["expiresAt"] == "2026-11-26T16:00:00.123Z"
    assert raw["data"]["ticket"] == {"id": "t1", "price": 19.99}
    assert raw["data"]["userId"] == "u1"


def test_parse_gives_back_the_typed_event() -> None:
    _, event = parse_envelope(order_created_bytes())

    assert isinstance(event, OrderCreated)
    assert event.ticket.price == Decimal("19.99")


def mutate(change: Any) -> bytes:
    raw = json.loads(order_created_bytes())
    change(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw["data"].update(extra=1),
        lambda raw: raw["data"].update(version="0"),
        lambda raw: raw["data"].update(status="shipped"),
        lambda raw: raw["data"]["ticket"].update(price="19.99"),
        lambda raw: raw["data"].update(expiresAt="2026-11-26T16:00:00"),
        lambda raw: raw["data"].pop("userId"),
        lambda raw: raw.update(schema_version=2),
        lambda raw: raw.update(type="OrderShipped"),
        lambda raw: raw.update(extra=True),
    ],
    ids=[
        "unknown field",
        "wrong type",
        "bad enum",
        "price as string",
        "naive time",
        "missing field",
        "unsupported version",
        "unknown type",
        "unknown envelope field",
    ],
)
def test_invalid_events_are_rejected(change: Any) -> None:
    with pytest.raises(EventParseError):
        parse_envelope(mutate(change))


def test_every_event_has_a_distinct_versioned_subject() -> None:
    subjects = [event.subject for event in ALL_EVENTS]

    assert len(set(subjects)) == len(subjects)
    assert all(subject.startswith(f"{SUBJECT_PREFIX}.") for subject in subjects)
    assert all(event.subject.endswith(f".v{event.schema_version}") for event in ALL_EVENTS)


def test_every_event_class_is_in_all_events() -> None:
    # ALL_EVENTS is read from the module; a class declared after it would be missed.
    declared: set[type[Event]] = set()
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__ == "common.events":
            declared.add(cls)
        pending.extend(cls.__subclasses__())
    assert set(ALL_EVENTS) == declared
    assert len(ALL_EVENTS) >= 10
