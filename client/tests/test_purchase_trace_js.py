"""In Chromium, on the real pages: a purchase started with "Purchase" sends one W3C trace context
(`traceparent`, one trace id) on every API call until the order ends, and none outside it."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from chromium import StandInSite, page_on
from playwright.sync_api import Browser, Page, Route, expect

ORIGIN = "https://client.test"
USER = {"id": "64a000000000000000000001", "email": "sam@example.com", "iat": 1, "exp": 2}
TICKET_ID = "64b000000000000000000002"
ORDER_ID = "64c000000000000000000003"
TICKET = {"id": TICKET_ID, "title": "Concert", "price": 20, "userId": "64a0000000000000000000ff"}
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


class Site(StandInSite):
    """The real client app's pages and a stand-in for the APIs that records every API call."""

    def __init__(self) -> None:
        super().__init__(ORIGIN)
        self.order_status: str | None = None
        self.calls: list[tuple[str, str, str | None]] = []  # method, path, traceparent

    def order(self) -> dict[str, Any]:
        expires = datetime.now(UTC) + timedelta(minutes=15)
        return {
            "id": ORDER_ID,
            "status": self.order_status,
            "expiresAt": expires.isoformat().replace("+00:00", "Z"),
            "ticket": {"id": TICKET_ID, "title": TICKET["title"], "price": TICKET["price"]},
        }

    def handle(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if not url.path.startswith("/api/"):
            self.serve_page(route, url)
            return
        self.calls.append((request.method, url.path, request.headers.get("traceparent")))
        call = (request.method, url.path)
        if call == ("GET", "/api/users/currentuser"):
            self._json(route, {"currentUser": USER})
        elif call == ("GET", f"/api/tickets/{TICKET_ID}"):
            self._json(route, {**TICKET, "orderId": ORDER_ID if self.order_status else None})
        elif call == ("POST", "/api/orders"):
            self.order_status = "created"
            self._json(route, self.order(), status=201)
        elif call == ("GET", f"/api/orders/{ORDER_ID}"):
            self._json(route, self.order())
        elif call == ("GET", "/api/orders"):
            self._json(route, [self.order()] if self.order_status else [])
        elif call == ("POST", "/api/payments"):
            self.order_status = "completed"
            self._json(route, {"id": "ch_1", "orderId": ORDER_ID}, status=201)
        else:
            self._json(route, {"errors": [{"message": "Not found"}]}, status=404)

    def traceparents_since(self, index: int) -> list[str | None]:
        return [traceparent for _, _, traceparent in self.calls[index:]]


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    with page_on(browser, site.handle) as page:
        yield page


def reserve(page: Page, site: Site) -> int:
    """Open the ticket page and press Purchase; the index of the first call of the purchase."""
    page.goto(f"{ORIGIN}/tickets/{TICKET_ID}")
    purchase = page.get_by_role("button", name="Purchase")
    expect(purchase).to_be_visible()
    started = len(site.calls)
    purchase.click()
    page.wait_for_url(f"{ORIGIN}/orders/{ORDER_ID}")
    expect(page.get_by_role("button", name="Pay $20.00")).to_be_enabled()
    return started


def trace_ids(traceparents: list[str | None]) -> set[str]:
    matches = [TRACEPARENT.fullmatch(tp or "") for tp in traceparents]
    assert all(matches), traceparents
    return {match.group(1) for match in matches if match}


def test_every_call_of_a_purchase_carries_one_trace_and_none_before_or_after(
    page: Page, site: Site
) -> None:
    started = reserve(page, site)
    assert site.traceparents_since(0)[:started] == [None] * started  # browsing the ticket

    page.get_by_role("button", name="Pay $20.00").click()
    expect(page.get_by_text("Order completed.")).to_be_visible()
    purchase = site.calls[started:]
    paths = [(method, path) for method, path, _ in purchase]
    assert ("POST", "/api/orders") in paths
    assert ("GET", "/api/users/currentuser") in paths  # the order page's own session check
    assert ("POST", "/api/payments") in paths
    assert len(trace_ids(site.traceparents_since(started))) == 1
    # Each request is its own span under the purchase: a parent id of its own.
    parents = [TRACEPARENT.fullmatch(tp or "") for tp in site.traceparents_since(started)]
    assert len({match.group(2) for match in parents if match}) == len(purchase)

    after = len(site.calls)
    page.goto(f"{ORIGIN}/orders")  # the order ended: browsing on is outside the purchase
    expect(page.get_by_role("link", name="Concert")).to_be_visible()
    assert len(site.calls) > after
    assert site.traceparents_since(after) == [None] * (len(site.calls) - after)


def test_leaving_the_order_page_ends_the_purchase_and_a_new_one_has_a_new_trace(
    page: Page, site: Site
) -> None:
    started = reserve(page, site)
    (first,) = trace_ids(site.traceparents_since(started))

    left = len(site.calls)
    page.goto(f"{ORIGIN}/orders")  # the buyer goes elsewhere with the order still open
    expect(page.get_by_role("link", name="Concert")).to_be_visible()
    page.goto(f"{ORIGIN}/orders/{ORDER_ID}")  # and back: the purchase they left stays ended
    expect(page.get_by_role("button", name="Pay $20.00")).to_be_enabled()
    assert len(site.calls) > left
    assert site.traceparents_since(left) == [None] * (len(site.calls) - left)

    site.order_status = None  # released: the ticket can be bought again
    again = reserve(page, site)
    (second,) = trace_ids(site.traceparents_since(again))
    assert second != first
