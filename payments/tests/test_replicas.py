"""The orders and users replicas: version N applies only on top of N-1, duplicates are dropped."""

from collections.abc import Callable
from typing import Any

import httpx
import stripe
from common.events import (
    ChargeUpdated,
    OrderCancelled,
    OrderUpdated,
    TicketRef,
    UserCreated,
    UserUpdated,
)
from fastapi import FastAPI
from gittix_testing import TestBus
from payment_events import BUYER_ID, order_created, publish_and_settle
from payment_requests import pay
from payments.service import ReplicaOutcome, _versioned_outcome


async def test_a_cancellation_arriving_before_its_order_applies_once_the_order_is_there(
    app: FastAPI, client: httpx.AsyncClient, bus: TestBus, session_cookie: Callable[..., Any]
) -> None:
    created = order_created()
    await bus.publish(
        OrderCancelled(id=created.id, version=1, ticket=TicketRef(id=created.ticket.id))
    )
    await publish_and_settle(bus, created)
    await bus.wait_consumer_idle("payments-order-cancelled-v1")

    response = await pay(client, session_cookie(BUYER_ID), created.id)

    assert response.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}


async def test_duplicate_and_stale_order_events_change_nothing(
    app: FastAPI, client: httpx.AsyncClient, bus: TestBus, session_cookie: Callable[..., Any]
) -> None:
    created = order_created()
    awaiting = OrderUpdated(id=created.id, version=1, status="awaiting_payment")
    await publish_and_settle(bus, created, awaiting)
    # Redelivered: OrderCreated would reset the replica to version 0 if it were applied again.
    await publish_and_settle(bus, created, awaiting)
    await publish_and_settle(
        bus, OrderCancelled(id=created.id, version=2, ticket=TicketRef(id=created.ticket.id))
    )

    response = await pay(client, session_cookie(BUYER_ID), created.id)

    assert response.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}


async def test_the_receipt_goes_to_the_users_latest_email_whatever_order_events_came_in(
    app: FastAPI,
    client: httpx.AsyncClient,
    bus: TestBus,
    session_cookie: Callable[..., Any],
    stripe_client: stripe.StripeClient,
) -> None:
    created = order_created()
    await bus.publish(UserUpdated(id=BUYER_ID, email="new@example.com", version=1))
    await publish_and_settle(bus, UserCreated(id=BUYER_ID, email="old@example.com", version=0))
    await publish_and_settle(bus, UserCreated(id=BUYER_ID, email="old@example.com", version=0))
    await bus.wait_consumer_idle("payments-user-updated-v1")
    await publish_and_settle(bus, created)

    response = await pay(client, session_cookie(BUYER_ID, "session@example.com"), created.id)

    assert response.status_code == 201
    charge = await bus.wait_for(ChargeUpdated, id=response.json()["id"])
    assert charge.stripe_id is not None
    intent = await stripe_client.v1.payment_intents.retrieve_async(charge.stripe_id)
    assert intent.to_dict()["receipt_email"] == "new@example.com"


def test_an_update_whose_predecessor_lands_just_before_the_read_back_is_retried() -> None:
    # The conditional write (over version 0) found nothing: OrderCreated was not stored yet.
    # It was stored an instant later, so the read that follows sees version 0. The
    # cancellation (version 1) must come back, not be acked as already applied and lost
    # (found by e2e/test_faults.py: payments kept a cancelled order as created).
    outcome = _versioned_outcome(False, 0, 1)

    assert outcome is ReplicaOutcome.AHEAD
    assert outcome.applicable_later
    assert _versioned_outcome(False, 1, 1) is ReplicaOutcome.ALREADY_APPLIED
    assert _versioned_outcome(False, None, 1) is ReplicaOutcome.UNKNOWN
