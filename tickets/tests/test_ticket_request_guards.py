"""The request guards every service has, on tickets' writes: another site's page cannot sell or
edit a ticket with the seller's cookie (403), and a body over 64 KiB is 413."""

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

Sell = Callable[..., Awaitable[dict[str, Any]]]
Headers = dict[str, str]
CROSS_SITE = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}


@pytest.mark.parametrize(
    "from_elsewhere",
    [CROSS_SITE, {"origin": "https://evil.example"}, {"sec-fetch-site": "same-site"}],
)
async def test_another_sites_page_cannot_sell_or_edit_with_the_sellers_cookie(
    client: httpx.AsyncClient, sell: Sell, seller: Headers, from_elsewhere: Headers
) -> None:
    ticket = await sell(title="Concert", price=20)
    headers = {**seller, **from_elsewhere}

    sold = await client.post("/api/tickets", json={"title": "Fake", "price": 1}, headers=headers)
    edited = await client.put(
        f"/api/tickets/{ticket['id']}", json={"title": "Cheap", "price": 1}, headers=headers
    )

    assert (sold.status_code, edited.status_code) == (403, 403)
    assert sold.json() == {"errors": [{"message": "Cross-site request refused"}]}
    assert [t["id"] for t in (await client.get("/api/tickets")).json()] == [ticket["id"]]
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


async def test_the_sites_own_pages_can_sell(client: httpx.AsyncClient, seller: Headers) -> None:
    own_page = {"origin": "https://testserver", "sec-fetch-site": "same-origin"}

    response = await client.post(
        "/api/tickets", json={"title": "Concert", "price": 20}, headers={**seller, **own_page}
    )

    assert response.status_code == 201


async def test_a_body_over_64_kib_is_413(client: httpx.AsyncClient, seller: Headers) -> None:
    response = await client.post(
        "/api/tickets", json={"title": "x" * (64 * 1024), "price": 20}, headers=seller
    )

    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"message": "Request body is too large (at most 64 KiB)"}]
    }
    assert (await client.get("/api/tickets")).json() == []
