"""Paying and expiring, end to end: all five services as processes on the real bus, localstripe,
through the HTTPS entry point.

reserve -> pay -> completed; reserve -> let it expire -> cancelled -> the ticket is for sale again
-> a second buyer pays. Services are eventually consistent (each learns of orders from events),
so a step that depends on another service's news is retried until it holds, as a client would.
"""

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from devserver.harness import RunningSystem
from gittix_testing import wait_until

# Short enough to wait out in a test, long enough to pay in time on a loaded 2-core machine.
EXPIRATION_SECONDS = 6
SYSTEM_ENV = {"ORDER_EXPIRATION_SECONDS": str(EXPIRATION_SECONDS)}
PASSWORD = "correct horse battery"
EVENTUAL = 30.0


async def until(
    attempt: Callable[[], Awaitable[httpx.Response]],
    holds: Callable[[httpx.Response], bool],
    *,
    timeout: float = EVENTUAL,
) -> httpx.Response:
    """Repeat a request until its answer satisfies `holds`; the last answer either way (the
    caller's assert then shows what the service kept answering)."""
    last: list[httpx.Response] = []

    async def held() -> bool:
        last[:] = [await attempt()]
        return holds(last[0])

    with contextlib.suppress(AssertionError):
        await wait_until(held, timeout=timeout, interval=0.1, message="the answer never held")
    return last[0]


async def sign_up(http: httpx.AsyncClient) -> str:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def sell(http: httpx.AsyncClient, title: str, price: float) -> dict[str, Any]:
    response = await http.post("/api/tickets", json={"title": title, "price": price})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def reserve(http: httpx.AsyncClient, ticket_id: str) -> dict[str, Any]:
    # 404 until orders has heard of the ticket.
    response = await until(
        lambda: http.post("/api/orders", json={"ticketId": ticket_id}),
        lambda r: r.status_code != 404,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def pay(
    http: httpx.AsyncClient, order_id: str, token: str = "pm_card_visa"
) -> httpx.Response:
    # 404 until payments has heard of the order.
    return await until(
        lambda: http.post("/api/payments", json={"orderId": order_id, "token": token}),
        lambda r: r.status_code != 404,
    )


async def order_status(http: httpx.AsyncClient, order_id: str, wanted: str) -> str:
    response = await until(
        lambda: http.get(f"/api/orders/{order_id}"), lambda r: r.json().get("status") == wanted
    )
    return str(response.json()["status"])


async def test_reserve_then_pay_completes_the_order(system: RunningSystem) -> None:
    async with system.client() as seller, system.client() as buyer:
        await sign_up(seller)
        buyer_id = await sign_up(buyer)
        ticket = await sell(seller, "Cup final", 45.5)
        order = await reserve(buyer, ticket["id"])
        assert (order["status"], order["userId"]) == ("created", buyer_id)

        paid = await pay(buyer, order["id"])

        assert paid.status_code == 201, paid.text
        assert set(paid.json()) == {"id"}
        assert await order_status(buyer, order["id"], "completed") == "completed"
        again = await buyer.post(
            "/api/payments", json={"orderId": order["id"], "token": "pm_card_visa"}
        )
        assert again.status_code == 400
        # Sold: not offered for sale any more.
        listed = await seller.get("/api/tickets")
        assert ticket["id"] not in {t["id"] for t in listed.json()}


async def test_an_unpaid_order_expires_and_the_ticket_goes_to_the_next_buyer(
    system: RunningSystem,
) -> None:
    async with (
        system.client() as seller,
        system.client() as late_buyer,
        system.client() as next_buyer,
    ):
        await sign_up(seller)
        await sign_up(late_buyer)
        await sign_up(next_buyer)
        ticket = await sell(seller, "Opera night", 80)
        order = await reserve(late_buyer, ticket["id"])
        taken = await next_buyer.post("/api/orders", json={"ticketId": ticket["id"]})
        assert taken.status_code == 400  # locked while the first buyer may pay

        # Nobody pays: the lock runs out.
        assert await order_status(late_buyer, order["id"], "cancelled") == "cancelled"
        unlocked = await until(
            lambda: seller.get(f"/api/tickets/{ticket['id']}"),
            lambda r: r.json().get("orderId") is None,
        )
        assert unlocked.json()["orderId"] is None
        listed = await seller.get("/api/tickets")
        assert ticket["id"] in {t["id"] for t in listed.json()}

        second = await reserve(next_buyer, ticket["id"])
        paid = await pay(next_buyer, second["id"])

        assert paid.status_code == 201, paid.text
        assert await order_status(next_buyer, second["id"], "completed") == "completed"
