"""The request guards every service has, on payments: another site's page cannot pay with the
buyer's cookie (403, Stripe never asked), and a body over 64 KiB is 413."""

from typing import Any

import httpx
from common.events import ChargeCreated
from gittix_testing import TestBus
from payment_requests import Cookies


async def test_another_site_cannot_pay_with_the_buyers_cookie(
    client: httpx.AsyncClient,
    bus: TestBus,
    order: Any,
    buyer: Cookies,
) -> None:
    client.cookies = buyer

    response = await client.post(
        "/api/payments",
        json={"orderId": order.id, "token": "pm_card_visa"},
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )

    assert response.status_code == 403
    assert response.json() == {"errors": [{"message": "Cross-site request refused"}]}
    # The same payment from the site itself goes through: nothing was half-done before.
    paid = await client.post(
        "/api/payments",
        json={"orderId": order.id, "token": "pm_card_visa"},
        headers={"origin": "https://testserver", "sec-fetch-site": "same-origin"},
    )
    assert paid.status_code == 201
    await bus.wait_for(ChargeCreated, order_id=order.id)
    assert [event.order_id for event in bus.published(ChargeCreated)] == [order.id]


async def test_a_body_over_64_kib_is_413(
    client: httpx.AsyncClient, order: Any, buyer: Cookies
) -> None:
    client.cookies = buyer

    response = await client.post(
        "/api/payments", json={"orderId": order.id, "token": "pm_" + "x" * (64 * 1024)}
    )

    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"message": "Request body is too large (at most 64 KiB)"}]
    }
