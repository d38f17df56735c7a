"""POST /api/payments/webhooks: Stripe's signed events are the source of truth. Only a valid
Stripe-Signature is accepted; each event is applied once; events arrive in any order, twice, or
for intents GitTix does not know, and the charge ends as Stripe says."""

from typing import Any

import httpx
import stripe
from bson import ObjectId
from common.events import ChargeCreated, ChargeDispute, ChargeUpdated, ChargeUpdatedV2
from conftest import WEBHOOK_SECRET
from gittix_testing import TestBus
from payment_requests import Cookies, pay, waiting_charge
from payments.service import AUTHENTICATION_FAILED
from stripe_events import (
    WEBHOOK_PATH,
    deliver,
    dispute_data,
    intent_data,
    intent_succeeded,
    refunded_charge_data,
    stripe_event,
)

from payments import repository


async def test_an_event_without_a_valid_signature_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    event = intent_succeeded(charge["paymentIntentId"])
    client.cookies = {}

    wrong_secret = await deliver(client, event, "whsec_someone_else")
    too_old = await deliver(client, event, WEBHOOK_SECRET, at=int(event["created"]) - 3600)
    unsigned = await client.post(WEBHOOK_PATH, json=event)
    garbled = await client.post(
        WEBHOOK_PATH, content=b"{not json", headers={"stripe-signature": "t=1,v1=00"}
    )

    for response in (wrong_secret, too_old, unsigned, garbled):
        assert response.status_code == 400
        assert response.json() == {
            "errors": [{"message": "Invalid Stripe signature", "field": "Stripe-Signature"}]
        }
    assert bus.published(ChargeUpdated) == []
    # The same event, signed, is applied: the refusals did not mark it as seen.
    assert (await deliver(client, event, WEBHOOK_SECRET)).status_code == 200
    assert (await bus.wait_for(ChargeUpdated, id=charge["id"])).status == "completed"


async def test_a_signed_body_that_is_not_an_event_is_400(
    client: httpx.AsyncClient, bus: TestBus, order: Any
) -> None:
    response = await deliver(client, {"id": "evt_1", "type": "charge.refunded"}, WEBHOOK_SECRET)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Not a Stripe event"}]}
    assert bus.published(ChargeUpdated) == []


async def test_succeeded_completes_a_payment_whose_post_never_returned_once(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    client.cookies = {}  # Stripe has no session
    event = intent_succeeded(charge["paymentIntentId"])

    first = await deliver(client, event, WEBHOOK_SECRET)
    redelivered = await deliver(client, event, WEBHOOK_SECRET)
    # Stripe may also send a second event about the same success.
    another = intent_succeeded(charge["paymentIntentId"])
    again = await deliver(client, another, WEBHOOK_SECRET)

    assert [first.status_code, redelivered.status_code, again.status_code] == [200, 200, 200]
    assert first.json() == {"received": True}
    completed = await bus.wait_for(ChargeUpdated, id=charge["id"])
    assert (completed.version, completed.status, completed.stripe_id) == (
        1,
        "completed",
        charge["paymentIntentId"],
    )
    assert len(bus.published(ChargeUpdated, id=charge["id"])) == 1


async def test_succeeded_finds_a_charge_by_its_metadata_when_the_intent_id_was_never_stored(
    client: httpx.AsyncClient,
    app: Any,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    # As if the create call's answer was lost: the charge does not know its intent.
    db = app.state.runtime.db
    await db[repository.CHARGES].update_one(
        {"_id": ObjectId(charge["id"])}, {"$unset": {"intent_id": ""}}
    )
    event = intent_succeeded(charge["paymentIntentId"], charge_id=charge["id"])

    assert (await deliver(client, event, WEBHOOK_SECRET)).status_code == 200

    completed = await bus.wait_for(ChargeUpdated, id=charge["id"])
    assert (completed.status, completed.stripe_id) == ("completed", charge["paymentIntentId"])


async def test_an_event_for_an_unknown_intent_is_acknowledged_and_changes_nothing(
    client: httpx.AsyncClient, bus: TestBus, order: Any
) -> None:
    for event_type, data in (
        ("payment_intent.succeeded", intent_data("pi_unknown", "succeeded")),
        ("charge.refunded", refunded_charge_data("pi_unknown", "re_unknown")),
        ("charge.dispute.created", dispute_data("pi_unknown", "dp_unknown", "needs_response")),
        ("customer.created", {"id": "cus_1", "object": "customer"}),
    ):
        response = await deliver(client, stripe_event(event_type, data), WEBHOOK_SECRET)
        assert response.status_code == 200

    assert bus.published(ChargeUpdated) == []


async def test_payment_failed_fails_the_charge_and_cancels_the_intent(
    client: httpx.AsyncClient,
    app: Any,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    event = stripe_event(
        "payment_intent.payment_failed",
        intent_data(
            charge["paymentIntentId"],
            "requires_payment_method",
            error_code="payment_intent_authentication_failure",
        ),
    )

    assert (await deliver(client, event, WEBHOOK_SECRET)).status_code == 200

    failed = await bus.wait_for(ChargeUpdated, id=charge["id"])
    assert failed.status == "failed"
    intent = await stripe_client.v1.payment_intents.retrieve_async(charge["paymentIntentId"])
    assert intent.status == "canceled"
    stored = await repository.find_charge(app.state.runtime.db, charge_id=ObjectId(charge["id"]))
    assert stored is not None and stored.get("failure") == AUTHENTICATION_FAILED
    # The order is over for this buyer: paying again is refused.
    again = await pay(client, buyer, order.id)
    assert again.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}


async def test_canceled_fails_a_waiting_charge(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    intent_id = charge["paymentIntentId"]

    canceled = stripe_event("payment_intent.canceled", intent_data(intent_id, "canceled"))
    assert (await deliver(client, canceled, WEBHOOK_SECRET)).status_code == 200
    failed = await bus.wait_for(ChargeUpdated, id=charge["id"], version=1)
    assert failed.status == "failed"


async def test_refunded_before_succeeded_completes_then_records_the_refund(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    charge = await waiting_charge(client, buyer, order.id)
    intent_id = charge["paymentIntentId"]
    refunded = stripe_event("charge.refunded", refunded_charge_data(intent_id, "re_outside"))
    succeeded = intent_succeeded(intent_id)

    assert (await deliver(client, refunded, WEBHOOK_SECRET)).status_code == 200
    assert (await deliver(client, succeeded, WEBHOOK_SECRET)).status_code == 200

    completed = await bus.wait_for(ChargeUpdated, id=charge["id"], version=1)
    recorded = await bus.wait_for(ChargeUpdated, id=charge["id"], version=2)
    assert (completed.status, completed.stripe_id) == ("completed", intent_id)
    assert (recorded.status, recorded.stripe_refund_id) == ("completed", "re_outside")
    assert len(bus.published(ChargeUpdated, id=charge["id"])) == 2


async def test_a_refund_made_outside_gittix_is_recorded_on_the_charge(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    paid = await pay(client, buyer, order.id)
    assert paid.status_code == 201
    completed = await bus.wait_for(ChargeUpdated, id=paid.json()["id"])
    assert completed.stripe_id is not None
    # Someone refunds it in Stripe's dashboard; Stripe tells GitTix.
    refund = await stripe_client.v1.refunds.create_async({"payment_intent": completed.stripe_id})
    event = stripe_event("charge.refunded", refunded_charge_data(completed.stripe_id, refund.id))

    assert (await deliver(client, event, WEBHOOK_SECRET)).status_code == 200

    recorded = await bus.wait_for(ChargeUpdated, id=paid.json()["id"], version=2)
    assert (recorded.status, recorded.stripe_refund_id) == ("completed", refund.id)
    refunds = await stripe_client.v1.refunds.list_async()
    assert [r.id for r in refunds.data if r.payment_intent == completed.stripe_id] == [refund.id]


async def test_a_dispute_shows_on_the_charge_and_an_older_state_never_overwrites_a_newer(
    client: httpx.AsyncClient,
    app: Any,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    paid = await pay(client, buyer, order.id)
    charge_id = paid.json()["id"]
    completed = await bus.wait_for(ChargeUpdated, id=charge_id)
    assert completed.stripe_id is not None
    opened = stripe_event(
        "charge.dispute.created",
        dispute_data(completed.stripe_id, "dp_1", "needs_response"),
        created=1_800_000_000,
    )
    closed = stripe_event(
        "charge.dispute.closed",
        dispute_data(completed.stripe_id, "dp_1", "lost"),
        created=1_800_000_100,
    )

    # Closed arrives first; the older "opened" comes after and changes nothing.
    assert (await deliver(client, closed, WEBHOOK_SECRET)).status_code == 200
    assert (await deliver(client, opened, WEBHOOK_SECRET)).status_code == 200

    announced = await bus.wait_for(ChargeUpdatedV2, id=charge_id, version=2)
    assert announced.status == "completed"
    assert announced.dispute == ChargeDispute(
        id="dp_1", status="lost", reason="fraudulent", amount=2550
    )
    assert len(bus.published(ChargeUpdatedV2, id=charge_id)) == 1
    stored = await repository.find_charge(app.state.runtime.db, charge_id=ObjectId(charge_id))
    assert stored is not None
    assert stored.get("dispute") == {
        "id": "dp_1",
        "status": "lost",
        "reason": "fraudulent",
        "amount": 2550,
        "event_created": 1_800_000_100,
    }
    assert len(bus.published(ChargeUpdated, id=charge_id)) == 1  # the completion
    assert len(bus.published(ChargeCreated, order_id=order.id)) == 1
