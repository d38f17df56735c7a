"""In Chromium: the access token lasts a minute, so the pages' API calls get a new one from the
refresh cookie when a service answers 401 and try once more; a page that finds nobody signed in
first asks for a refresh; and a refresh that fails leaves the person signed out."""

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route

import client

ORIGIN = "https://client.test"
USER = {"id": "64a000000000000000000001", "email": "sam@example.com", "iat": 1, "exp": 2}
SCRIPT = "<!doctype html><title>blank</title>"
STATIC = Path(client.__file__).parent / "static"


class Api:
    """A stand-in for the services: a session whose access token has run out."""

    def __init__(self, *, refresh_works: bool = True) -> None:
        self.refresh_works = refresh_works
        self.fresh = False
        self.refreshes = 0
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def handle(self, route: Route) -> None:
        path = urlsplit(route.request.url).path
        status: int
        body: object
        with self.lock:
            self.calls.append(path)
            if path == "/api/users/refresh" and route.request.method == "POST":
                self.refreshes += 1
                self.fresh = self.refresh_works
                status, body = (200, USER) if self.refresh_works else (401, _not_authorized())
            elif path == "/api/users/currentuser":
                status, body = 200, {"currentUser": USER if self.fresh else None}
            elif path == "/api/orders":
                status, body = (200, []) if self.fresh else (401, _not_authorized())
            else:
                status, body = 200, None
        if body is None:
            route.fulfill(status=200, content_type="text/html", body=SCRIPT)
        else:
            route.fulfill(status=status, content_type="application/json", body=json.dumps(body))


def _not_authorized() -> dict[str, Any]:
    return {"errors": [{"message": "Not authorized"}]}


def open_page(browser: Browser, api: Api) -> Page:
    context = browser.new_context()
    context.route("**/api/**", api.handle)
    context.route(
        f"{ORIGIN}/blank", lambda route: route.fulfill(content_type="text/html", body=SCRIPT)
    )
    context.route(f"{ORIGIN}/static/**", _serve_static)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{ORIGIN}/blank")
    return page


def call_api(page: Page, count: int) -> Any:
    return page.evaluate(
        """(count) => import('/static/js/api.js').then((m) =>
            Promise.all(Array.from({length: count}, () => m.api('GET', '/api/orders'))))""",
        count,
    )


def test_a_401_gets_a_new_access_token_and_the_call_is_tried_once_more(browser: Browser) -> None:
    api = Api()
    page = open_page(browser, api)

    results = call_api(page, 3)

    assert results == [[], [], []]
    # Three calls at once share one refresh: a used refresh token presented again ends the
    # session.
    assert api.refreshes == 1
    assert api.calls.count("/api/orders") == 6
    page.context.close()


def test_when_the_refresh_fails_the_401_stands(browser: Browser) -> None:
    api = Api(refresh_works=False)
    page = open_page(browser, api)

    error = page.evaluate(
        """() => import('/static/js/api.js').then((m) =>
            m.api('GET', '/api/orders').then(() => null, (e) => [e.status, e.message]))"""
    )

    assert error == [401, "Not authorized"]
    assert api.refreshes == 1
    assert api.calls.count("/api/orders") == 1
    page.context.close()


def test_a_page_finding_nobody_signed_in_asks_for_a_refresh_first(browser: Browser) -> None:
    api = Api()
    page = open_page(browser, api)
    page.set_content(
        '<nav><span data-nav="signed-out">in</span><span data-nav="signed-in" hidden>'
        "<span data-user-email></span></span></nav>"
    )

    user = page.evaluate("() => import('/static/js/session.js').then((m) => m.loadSession())")

    assert user == USER
    assert api.refreshes == 1
    assert page.locator("[data-user-email]").text_content() == "sam@example.com"
    page.context.close()


def _serve_static(route: Route) -> None:
    """The real modules, from the client package's static directory."""
    relative = urlsplit(route.request.url).path.removeprefix("/static/")
    route.fulfill(content_type="text/javascript", body=(STATIC / relative).read_text())
