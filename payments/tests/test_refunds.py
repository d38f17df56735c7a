"""Refunds: money taken for an order that ended cancelled (paid as it expired) goes back."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import stripe
from aiohttp import ClientSession, web
from common.events import ChargeCreated, ChargeUpdated
from fastapi import FastAPI
from gittix_testing import TestBus, free_port, http_client, running, wait_until
from payment_events import (
    expired_while_paying,
    order_created,
    publish_and_settle,
)
from payment_requests import Cookies, pay


async def test_a_cancellation_arriving_after_the_charge_refunds_it(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    paid = await pay(client, buyer, order.id)
    assert paid.status_code == 201

    await publish_and_settle(bus, *expired_while_paying(order))

    refunded = await bus.wait_for(ChargeUpdated, id=paid.json()["id"], version=2)
    assert refunded.status == "completed" and refunded.stripe_refund_id is not None
    refund = await stripe_client.v1.refunds.retrieve_async(refunded.stripe_refund_id)
    assert (refund.payment_intent, refund.amount, refund.status) == (
        refunded.stripe_id,
        2550,
        "succeeded",
    )
    # A redelivered cancellation refunds nothing twice.
    await publish_and_settle(bus, expired_while_paying(order)[1])
    assert len(bus.published(ChargeUpdated, id=paid.json()["id"])) == 2


class HeldStripe:
    """A pass-through to localstripe that holds PaymentIntent requests until released."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def forward(self, request: web.Request) -> web.Response:
        if request.path == "/v1/payment_intents" and request.method == "POST":
            self.arrived.set()
            await self.release.wait()
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type="application/json"
            )


@pytest.fixture
async def held_stripe(localstripe: str) -> AsyncIterator[tuple[HeldStripe, str]]:
    held = HeldStripe(localstripe)
    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", held.forward)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield held, f"http://127.0.0.1:{port}"
    held.release.set()
    await runner.cleanup()


async def test_buyer_pays_in_the_instant_the_order_expires_and_is_refunded(
    app_factory: Callable[..., FastAPI],
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    held_stripe: tuple[HeldStripe, str],
    buyer: Cookies,
) -> None:
    held, stripe_base = held_stripe
    created = order_created()
    async with running(app_factory(database=database, stripe_api_base=stripe_base)) as app:
        await publish_and_settle(bus, created)
        async with http_client(app) as client:
            paying = asyncio.create_task(pay(client, buyer, created.id))
            # The card is being charged at Stripe ...
            await wait_until(held.arrived.wait, timeout=10, message="no charge reached Stripe")
            await publish_and_settle(bus, *expired_while_paying(created))  # ... as it expires
            held.release.set()
            response = await paying

        assert response.status_code == 400
        assert "refunded" in response.json()["errors"][0]["message"]
        charge = await bus.wait_for(ChargeCreated, order_id=created.id)
        completed = await bus.wait_for(ChargeUpdated, id=charge.id, version=1)
        refunded = await bus.wait_for(ChargeUpdated, id=charge.id, version=2)
    assert completed.status == "completed" and completed.stripe_refund_id is None
    assert refunded.stripe_refund_id is not None and refunded.stripe_id == completed.stripe_id


async def test_an_attempt_stripe_never_saw_is_not_made_for_a_cancelled_order(
    app_factory: Callable[..., FastAPI],
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    unreachable_stripe: str,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    created = order_created()
    async with running(app_factory(database=database, stripe_api_base=unreachable_stripe)) as app:
        await publish_and_settle(bus, created)
        async with http_client(app) as client:
            response = await pay(client, buyer, created.id)
    assert response.status_code == 503

    # Stripe is back and the order expires: the lost attempt never reached Stripe, so it is
    # resolved as failed without charging the card for a cancelled order (resolve, not retry).
    async with running(app_factory(database=database)):
        await publish_and_settle(bus, *expired_while_paying(created))
        charge = await bus.wait_for(ChargeCreated, order_id=created.id)
        failed = await bus.wait_for(ChargeUpdated, id=charge.id, version=1)
    assert (failed.status, failed.stripe_id, failed.stripe_refund_id) == ("failed", None, None)
    intents = await stripe_client.v1.payment_intents.list_async()
    assert [i for i in intents.data if i.metadata.to_dict().get("order_id") == created.id] == []
