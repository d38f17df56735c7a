"""The buyer's POST /api/payments as payments' tests send it, and the test cards they pay with."""

from typing import Any

import httpx

Cookies = dict[str, str]

VISA = "pm_card_visa"
# Stripe's test card that asks for 3-D Secure: the charge waits for the bank's challenge.
CARD_3DS = "pm_card_authenticationRequired"


async def pay(
    client: httpx.AsyncClient, cookies: Cookies, order_id: str, token: str = VISA
) -> httpx.Response:
    """Pay for the order as whoever `cookies` signs in."""
    client.cookies = cookies
    return await client.post("/api/payments", json={"orderId": order_id, "token": token})


async def waiting_charge(
    client: httpx.AsyncClient, cookies: Cookies, order_id: str
) -> dict[str, Any]:
    """A charge whose PaymentIntent waits for 3-D Secure: Stripe has it, no outcome yet."""
    response = await pay(client, cookies, order_id, CARD_3DS)
    assert response.status_code == 202
    return dict(response.json())
