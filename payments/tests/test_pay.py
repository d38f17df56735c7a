"""POST /api/payments: charging an order through Stripe, and every way it can be refused."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import stripe
from aiohttp import web
from bson import ObjectId
from common.events import ChargeCreated, ChargeUpdated, OrderCancelled, OrderUpdated, TicketRef
from fastapi import FastAPI
from gittix_testing import TestBus, free_port, http_client, running
from payment_events import BUYER_EMAIL, order_created, publish_and_settle
from payment_requests import Cookies, pay
from payments.service import ALREADY_PAID, UNAVAILABLE


async def test_paying_charges_the_price_and_publishes_the_charge(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    response = await pay(client, buyer, order.id)

    assert response.status_code == 201
    charge_id = response.json()["id"]
    assert response.json() == {"id": charge_id}
    created = await bus.wait_for(ChargeCreated, id=charge_id)
    assert (created.version, created.order_id, created.status, created.amount) == (
        0,
        order.id,
        "created",
        2550,
    )
    updated = await bus.wait_for(ChargeUpdated, id=charge_id)
    assert (updated.version, updated.status, updated.amount) == (1, "completed", 2550)
    assert updated.stripe_refund_id is None
    assert updated.stripe_id is not None
    intent = await stripe_client.v1.payment_intents.retrieve_async(updated.stripe_id)
    assert (intent.amount, intent.currency, intent.status) == (2550, "usd", "succeeded")
    assert intent.payment_method == "pm_card_visa"
    assert intent.to_dict()["receipt_email"] == BUYER_EMAIL


async def test_a_declined_card_is_402_with_stripes_message_and_a_failed_charge(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    response = await pay(client, buyer, order.id, "pm_card_visa_chargeDeclined")

    assert response.status_code == 402
    assert response.json() == {"errors": [{"message": "Your card was declined."}]}
    updated = await bus.wait_for(ChargeUpdated, order_id=order.id)
    assert (updated.version, updated.status, updated.stripe_id) == (1, "failed", None)
    # The decline ends the order: another card is not charged for it.
    again = await pay(client, buyer, order.id)
    assert again.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}
    assert len(bus.published(ChargeCreated, order_id=order.id)) == 1


async def test_paying_requires_signing_in(client: httpx.AsyncClient, order: Any) -> None:
    response = await client.post(
        "/api/payments", json={"orderId": order.id, "token": "pm_card_visa"}
    )

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": "pm_card_visa"}, "orderId"),
        ({"orderId": str(ObjectId())}, "token"),
        ({"orderId": str(ObjectId()), "token": ""}, "token"),
        ({"orderId": str(ObjectId()), "token": 42}, "token"),
        ({"orderId": "not-an-id", "token": "pm_card_visa"}, "orderId"),
        ({"orderId": 7, "token": "pm_card_visa"}, "orderId"),
    ],
)
async def test_malformed_payments_are_400_naming_the_field(
    client: httpx.AsyncClient,
    session_cookie: Callable[..., dict[str, str]],
    body: dict[str, object],
    field: str,
) -> None:
    client.cookies = session_cookie()
    response = await client.post("/api/payments", json=body)

    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == [field]


async def test_a_body_that_is_not_json_is_400(
    client: httpx.AsyncClient, session_cookie: Callable[..., dict[str, str]]
) -> None:
    client.cookies = session_cookie()
    response = await client.post(
        "/api/payments", content=b"{orderId", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Request body is not valid JSON"}]}


async def test_an_unknown_order_is_404(
    client: httpx.AsyncClient, session_cookie: Callable[..., dict[str, str]]
) -> None:
    response = await pay(client, session_cookie(), str(ObjectId()))

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Order not found"}]}


async def test_someone_elses_order_is_403(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    session_cookie: Callable[..., dict[str, str]],
) -> None:
    response = await pay(client, session_cookie(str(ObjectId()), "other@example.com"), order.id)

    assert response.status_code == 403
    assert bus.published(ChargeCreated) == []


async def test_a_cancelled_order_cannot_be_paid(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    await publish_and_settle(
        bus, OrderCancelled(id=order.id, version=1, ticket=TicketRef(id=order.ticket.id))
    )

    response = await pay(client, buyer, order.id)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Cannot pay for a cancelled order"}]}
    assert bus.published(ChargeCreated) == []


async def test_a_paid_order_cannot_be_paid_again(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    assert (await pay(client, buyer, order.id)).status_code == 201

    again = await pay(client, buyer, order.id)

    assert again.status_code == 400
    assert again.json() == {"errors": [{"message": ALREADY_PAID}]}
    # Once orders says so, the replica refuses it the same way.
    await publish_and_settle(
        bus,
        OrderUpdated(id=order.id, version=1, status="awaiting_payment"),
        OrderUpdated(id=order.id, version=2, status="completed"),
    )
    assert (await pay(client, buyer, order.id)).json() == {"errors": [{"message": ALREADY_PAID}]}
    # The outbox relay publishes after the 201, in its own time.
    await bus.wait_for(ChargeCreated, order_id=order.id)
    assert len(bus.published(ChargeCreated, order_id=order.id)) == 1


async def test_concurrent_payments_for_one_order_charge_it_once(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:

    responses = await asyncio.gather(*(pay(client, buyer, order.id) for _ in range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [400] * 7
    await bus.wait_for(ChargeUpdated, order_id=order.id, status="completed")
    assert len(bus.published(ChargeCreated, order_id=order.id)) == 1


async def test_stripe_unreachable_is_503_and_a_retry_resumes_the_same_charge(
    app_factory: Callable[..., FastAPI],
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    unreachable_stripe: str,
    buyer: Cookies,
    stripe_client: stripe.StripeClient,
) -> None:
    created = order_created()
    async with running(app_factory(database=database, stripe_api_base=unreachable_stripe)) as down:
        await publish_and_settle(bus, created)
        async with http_client(down) as client:
            failed = await pay(client, buyer, created.id)

    assert failed.status_code == 503
    assert failed.json() == {"errors": [{"message": UNAVAILABLE}]}
    started = await bus.wait_for(ChargeCreated, order_id=created.id)
    assert bus.published(ChargeUpdated) == []  # no outcome, and certainly not completed

    async with running(app_factory(database=database)) as up, http_client(up) as client:
        retried = await pay(client, buyer, created.id)

    assert retried.status_code == 201
    assert retried.json() == {"id": started.id}  # the same attempt, with the same idempotency key
    completed = await bus.wait_for(ChargeUpdated, id=started.id)
    assert completed.status == "completed"
    assert len(bus.published(ChargeCreated)) == 1


async def test_a_payment_method_stripe_does_not_know_fails_the_charge_with_402(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    response = await pay(client, buyer, order.id, "pm_no_such_card")

    assert response.status_code == 402
    assert response.json()["errors"][0]["message"]
    updated = await bus.wait_for(ChargeUpdated, order_id=order.id)
    assert updated.status == "failed"


@pytest.fixture(params=["server error", "timeout"])
async def failing_stripe(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A Stripe API base that answers every request with a 500, or never answers in time."""
    never = asyncio.Event()

    async def answer(_: web.Request) -> web.Response:
        if request.param == "timeout":
            await never.wait()
        return web.json_response(
            {"error": {"type": "api_error", "message": "Something went wrong"}}, status=500
        )

    server = web.Application()
    server.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(server)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    never.set()
    await runner.cleanup()


async def test_stripe_failing_or_timing_out_is_503_and_never_completes_the_order(
    app_factory: Callable[..., FastAPI],
    service_env: dict[str, str],
    database: Any,
    bus: TestBus,
    failing_stripe: str,
    buyer: Cookies,
) -> None:
    created = order_created()
    app = app_factory(database=database, stripe_api_base=failing_stripe, stripe_timeout_seconds=0.5)
    async with running(app), http_client(app) as client:
        await publish_and_settle(bus, created)
        response = await pay(client, buyer, created.id)

    assert response.status_code == 503
    assert response.json() == {"errors": [{"message": UNAVAILABLE}]}
    await bus.wait_for(ChargeCreated, order_id=created.id)
    assert bus.published(ChargeUpdated) == []
