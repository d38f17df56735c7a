"""Prices a ticket may have: only what Stripe can charge in USD, on selling and on editing."""

from typing import Any

import httpx
import pytest

Headers = dict[str, str]
PRICE_RANGE_MESSAGE = "Price must be between $0.50 and $999,999.99"


@pytest.mark.parametrize("price", [0.5, 0.51, 999999.98, 999999.99])
async def test_prices_at_the_edges_of_what_stripe_charges_are_accepted(
    client: httpx.AsyncClient, seller: Headers, price: float
) -> None:
    response = await client.post(
        "/api/tickets", json={"title": "Concert", "price": price}, headers=seller
    )

    assert response.status_code == 201, response.text
    assert response.json()["price"] == price


@pytest.mark.parametrize("price", [0.01, 0.49, 1000000, 1000000.01, 999999999.99])
async def test_selling_at_a_price_stripe_cannot_charge_is_refused(
    client: httpx.AsyncClient, seller: Headers, price: float
) -> None:
    response = await client.post(
        "/api/tickets", json={"title": "Concert", "price": price}, headers=seller
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": PRICE_RANGE_MESSAGE, "field": "price"}]}
    listed = await client.get("/api/tickets")
    assert listed.json() == []


@pytest.mark.parametrize("price", [0.49, 1000000])
async def test_editing_to_a_price_stripe_cannot_charge_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, sell: Any, seller: Headers, price: float
) -> None:
    ticket = await sell(title="Concert", price=20)

    response = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Concert", "price": price}, headers=seller
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": PRICE_RANGE_MESSAGE, "field": "price"}]}
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket
