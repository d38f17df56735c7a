"""3-D Secure: a card that asks for it answers 202 with what Stripe.js needs; the challenge's
outcome completes the charge (the buyer paying again, or Stripe's webhook) or fails it at once;
an abandoned one is cancelled at Stripe when the order expires; one passed too late is refunded."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import stripe
from aiohttp import web
from common.events import ChargeCreated, ChargeUpdated
from conftest import WEBHOOK_SECRET
from gittix_testing import TestBus, free_port
from payment_events import expired_while_paying, publish_and_settle
from payment_requests import CARD_3DS, Cookies, pay, waiting_charge
from payments.service import AUTHENTICATION_FAILED
from stripe_events import WEBHOOK_PATH


async def authenticate(localstripe: str, answer: dict[str, Any], *, success: bool) -> None:
    """What Stripe.js does when the buyer passes (or fails) the bank's challenge."""
    url = f"{localstripe}/v1/payment_intents/{answer['paymentIntentId']}/_authenticate"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            url,
            params={"success": "true" if success else "false"},
            json={"key": "pk_test_gittix", "client_secret": answer["clientSecret"]},
        )
    assert response.status_code == 200, response.text


async def test_a_card_asking_for_3ds_answers_202_and_the_order_waits(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    response = await pay(client, buyer, order.id, CARD_3DS)

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "clientSecret", "paymentIntentId"}
    assert body["status"] == "requires_action"
    intent = await stripe_client.v1.payment_intents.retrieve_async(body["paymentIntentId"])
    assert intent.status == "requires_action" and intent.client_secret == body["clientSecret"]
    assert intent.metadata.to_dict() == {"charge_id": body["id"], "order_id": order.id}
    created = await bus.wait_for(ChargeCreated, id=body["id"])
    assert created.status == "created"
    assert bus.published(ChargeUpdated) == []  # no outcome: the order stays awaiting payment


async def test_paying_again_after_passing_3ds_completes_the_same_charge(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    localstripe: str,
    buyer: Cookies,
) -> None:
    challenge = await waiting_charge(client, buyer, order.id)

    await authenticate(localstripe, challenge, success=True)
    response = await pay(client, buyer, order.id, CARD_3DS)

    assert response.status_code == 201
    assert response.json() == {"id": challenge["id"]}
    completed = await bus.wait_for(ChargeUpdated, id=challenge["id"])
    assert (completed.status, completed.stripe_id) == ("completed", challenge["paymentIntentId"])
    assert len(bus.published(ChargeCreated, order_id=order.id)) == 1


async def test_failing_3ds_fails_the_charge_at_once_and_cancels_the_intent(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    localstripe: str,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    challenge = await waiting_charge(client, buyer, order.id)

    await authenticate(localstripe, challenge, success=False)
    response = await pay(client, buyer, order.id, CARD_3DS)

    assert response.status_code == 402
    assert response.json() == {"errors": [{"message": AUTHENTICATION_FAILED}]}
    failed = await bus.wait_for(ChargeUpdated, id=challenge["id"])
    assert (failed.status, failed.stripe_id) == ("failed", None)
    intent = await stripe_client.v1.payment_intents.retrieve_async(challenge["paymentIntentId"])
    assert intent.status == "canceled"


async def test_an_abandoned_challenge_is_cancelled_at_stripe_when_the_order_expires(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    challenge = await waiting_charge(client, buyer, order.id)

    await publish_and_settle(bus, *expired_while_paying(order))

    failed = await bus.wait_for(ChargeUpdated, id=challenge["id"])
    assert failed.status == "failed"
    intent = await stripe_client.v1.payment_intents.retrieve_async(challenge["paymentIntentId"])
    assert intent.status == "canceled"


async def test_3ds_passed_after_the_order_expired_is_refunded(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    localstripe: str,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    challenge = await waiting_charge(client, buyer, order.id)
    # The buyer passes the challenge just as the order expires, before any webhook arrives.
    await authenticate(localstripe, challenge, success=True)

    await publish_and_settle(bus, *expired_while_paying(order))

    completed = await bus.wait_for(ChargeUpdated, id=challenge["id"], version=1)
    refunded = await bus.wait_for(ChargeUpdated, id=challenge["id"], version=2)
    assert completed.status == "completed"
    assert refunded.stripe_refund_id is not None
    refund = await stripe_client.v1.refunds.retrieve_async(refunded.stripe_refund_id)
    assert (refund.payment_intent, refund.amount) == (challenge["paymentIntentId"], 2550)


class WebhookRelay:
    """Receives localstripe's signed webhook deliveries and hands them, byte for byte with
    their Stripe-Signature, to the app under test (which has no port of its own here)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.answers: list[int] = []

    async def receive(self, request: web.Request) -> web.Response:
        answer = await self.client.post(
            WEBHOOK_PATH,
            content=await request.read(),
            headers={
                "content-type": request.headers["Content-Type"],
                "stripe-signature": request.headers["Stripe-Signature"],
            },
        )
        self.answers.append(answer.status_code)
        return web.Response(status=answer.status_code, body=answer.content)


@pytest.fixture
async def webhooks_from_localstripe(
    localstripe: str, client: httpx.AsyncClient
) -> AsyncIterator[WebhookRelay]:
    relay = WebhookRelay(client)
    server = web.Application()
    server.router.add_post("/", relay.receive)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # One endpoint id for every test: registering again points it at this test's relay.
    async with httpx.AsyncClient(timeout=10) as http:
        registered = await http.post(
            f"{localstripe}/_config/webhooks/payments-tests",
            content=json.dumps(
                {"url": f"http://127.0.0.1:{port}/", "secret": WEBHOOK_SECRET}
            ).encode(),
        )
    assert registered.status_code == 200
    yield relay
    await runner.cleanup()


async def test_the_webhook_completes_a_3ds_payment_whose_tab_was_closed(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    localstripe: str,
    buyer: Cookies,
    webhooks_from_localstripe: WebhookRelay,
) -> None:
    challenge = await waiting_charge(client, buyer, order.id)

    # The buyer passes the challenge and closes the tab: nobody calls GitTix again.
    await authenticate(localstripe, challenge, success=True)

    completed = await bus.wait_for(ChargeUpdated, id=challenge["id"], timeout=20)
    assert (completed.status, completed.stripe_id) == ("completed", challenge["paymentIntentId"])
    assert 200 in webhooks_from_localstripe.answers
