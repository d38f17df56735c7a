"""Ticket lists come a page at a time: ?limit=, ?cursor=, the next page in the Link header."""

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from common.events import TicketUpdated
from gittix_testing import TestBus

Sell = Callable[..., Awaitable[dict[str, Any]]]


def next_link(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def every_page(
    client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None
) -> list[list[dict[str, Any]]]:
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), list)
        pages.append(response.json())
        next_url = next_link(response)
    return pages


async def test_tickets_for_sale_come_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient, sell: Sell
) -> None:
    sold = [(await sell(title=f"Gig {n}"))["id"] for n in range(7)]

    pages = await every_page(client, "/api/tickets?limit=3")

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [ticket["id"] for page in pages for ticket in page] == sold[::-1]


async def test_the_default_page_is_20_and_the_last_page_has_no_link(
    client: httpx.AsyncClient, sell: Sell
) -> None:
    for n in range(21):
        await sell(title=f"Gig {n}")

    first = await client.get("/api/tickets")
    assert len(first.json()) == 20 and next_link(first) is not None
    last = await client.get(next_link(first) or "")
    assert len(last.json()) == 1 and "link" not in last.headers


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=1764288000000-" + "g" * 24, "cursor"),  # the shape, but not an id
    ],
)
async def test_a_bad_limit_or_cursor_is_400_naming_it(
    client: httpx.AsyncClient, query: str, field: str
) -> None:
    response = await client.get(f"/api/tickets?{query}")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and all(error["message"] for error in errors)
    assert field in [error.get("field") for error in errors]


async def test_my_tickets_keeps_reserved_and_sold_ones_with_their_state(
    client: httpx.AsyncClient,
    sell: Sell,
    seller: dict[str, str],
    stranger: dict[str, str],
    bus: TestBus,
    order_created: Callable[..., Any],
    order_updated: Callable[..., Any],
) -> None:
    mine = [await sell(title=f"Mine {n}") for n in range(4)]
    await client.post("/api/tickets", json={"title": "Theirs", "price": 5}, headers=stranger)
    reserving, buying = order_created(mine[1]["id"]), order_created(mine[2]["id"])
    await bus.publish(reserving)
    await bus.publish(buying)
    await bus.publish(order_updated(buying.id, "completed"))
    await bus.wait_for(TicketUpdated, id=mine[1]["id"])
    await bus.wait_for(TicketUpdated, id=mine[2]["id"])
    await bus.wait_consumer_idle("tickets-order-updated-v1")

    pages = await every_page(client, "/api/tickets/mine?limit=2", headers=seller)

    shown = [(ticket["title"], ticket["state"]) for page in pages for ticket in page]
    assert shown == [
        ("Mine 3", "for sale"),
        ("Mine 2", "sold"),
        ("Mine 1", "reserved"),
        ("Mine 0", "for sale"),
    ]
    assert [len(page) for page in pages] == [2, 2]
    for_sale = [
        ticket["title"] for page in await every_page(client, "/api/tickets") for ticket in page
    ]
    assert "Mine 1" not in for_sale and "Mine 2" not in for_sale and "Theirs" in for_sale


async def test_my_tickets_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tickets/mine")

    assert response.status_code == 401
