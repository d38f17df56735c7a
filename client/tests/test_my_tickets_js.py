"""In Chromium: "My tickets" shows each of the seller's tickets with its state (for sale,
reserved, sold), an Edit link only on one still for sale, and the next page on "Load more"."""

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chromium import StandInSite, page_on
from playwright.sync_api import Browser, Route, expect

ORIGIN = "https://client.test"
SELLER = {"id": "64a000000000000000000001", "email": "sam@example.com", "iat": 1, "exp": 2}


def own_ticket(number: int, title: str, state: str) -> dict[str, Any]:
    return {
        "id": f"65a1b2c3d4e5f60718293a{number:02x}",
        "title": title,
        "price": 20.5,
        "userId": SELLER["id"],
        "orderId": None if state == "for sale" else f"65b1b2c3d4e5f60718293a{number:02x}",
        "version": 0 if state == "for sale" else 1,
        "state": state,
    }


# GET /api/tickets/mine as tickets answers it: two pages, the first naming the second.
PAGES = {
    None: (
        [
            own_ticket(3, "Opera", "for sale"),
            own_ticket(2, "Final", "sold"),
            own_ticket(1, "Gig", "reserved"),
        ],
        "c1",
    ),
    "c1": ([own_ticket(0, "Play", "sold")], None),
}


class Site(StandInSite):
    """The real client app's pages, with the seller signed in and their tickets."""

    def handle(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.path == "/api/users/currentuser":
            self._json(route, {"currentUser": SELLER})
        elif url.path == "/api/tickets/mine":
            items, next_cursor = PAGES[parse_qs(url.query).get("cursor", [None])[0]]
            headers = {"Content-Type": "application/json"}
            if next_cursor is not None:
                headers["Link"] = f'</api/tickets/mine?cursor={next_cursor}>; rel="next"'
            route.fulfill(status=200, headers=headers, body=json.dumps(items))
        elif url.path.startswith("/api/"):
            self._json(route, {"errors": [{"message": "Not found"}]}, status=404)
        else:
            self.serve_page(route, url)


def test_each_ticket_shows_its_state_and_only_one_for_sale_can_be_edited(
    browser: Browser,
) -> None:
    site = Site(ORIGIN)
    with page_on(browser, site.handle) as page:
        page.goto(f"{ORIGIN}/tickets/mine")
        items = page.get_by_role("list", name="Your tickets").get_by_role("listitem")
        expect(items).to_have_count(3)

        for title, label in (("Opera", "For sale"), ("Final", "Sold"), ("Gig", "Reserved")):
            expect(items.filter(has_text=title)).to_contain_text(label)
        expect(items.filter(has_text="Gig")).not_to_contain_text("Sold")
        expect(
            items.filter(has_text="Opera").get_by_role("link", name="Edit Opera")
        ).to_have_attribute("href", f"/tickets/{PAGES[None][0][0]['id']}/edit")
        for title in ("Final", "Gig"):
            expect(
                items.filter(has_text=title).get_by_role("link", name=f"Edit {title}")
            ).to_have_count(0)

        page.get_by_role("button", name="Load more").click()
        expect(items).to_have_count(4)
        expect(items.nth(3)).to_contain_text("Play")
        expect(items.nth(3)).to_contain_text("Sold")
        expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    site.close()
