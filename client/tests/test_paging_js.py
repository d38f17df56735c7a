"""In Chromium: a paginated list shows its first page, "Load more" appends the page the Link
header names, and the button goes away on the last page."""

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Browser, Route

import client

ORIGIN = "https://client.test"
BLANK = "<!doctype html><title>blank</title>"
STATIC = Path(client.__file__).parent / "static"
PAGES = {
    None: ([{"title": "Newest"}, {"title": "Middle"}], "c2"),
    "c2": ([{"title": "Oldest"}], None),
}


def serve_api(route: Route) -> None:
    query = parse_qs(urlsplit(route.request.url).query)
    items, next_cursor = PAGES[query.get("cursor", [None])[0]]
    headers = {}
    if next_cursor is not None:
        headers["Link"] = f'</api/tickets/mine?limit=2&cursor={next_cursor}>; rel="next"'
    route.fulfill(content_type="application/json", body=json.dumps(items), headers=headers)


def serve_static(route: Route) -> None:
    relative = urlsplit(route.request.url).path.removeprefix("/static/")
    route.fulfill(content_type="text/javascript", body=(STATIC / relative).read_text())


def test_load_more_appends_the_next_page_until_the_last(browser: Browser) -> None:
    context = browser.new_context()
    context.route("**/api/tickets/mine**", serve_api)
    context.route(
        f"{ORIGIN}/blank", lambda route: route.fulfill(content_type="text/html", body=BLANK)
    )
    context.route(f"{ORIGIN}/static/**", serve_static)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{ORIGIN}/blank")
    page.set_content('<ul id="list"></ul><button id="more" type="button">Load more</button>')

    shown = page.evaluate(
        """() => import('/static/js/paging.js').then((m) => m.showPaged(
            document.getElementById('list'), document.getElementById('more'),
            '/api/tickets/mine?limit=2',
            (item) => Object.assign(document.createElement('li'), {textContent: item.title})))"""
    )

    assert shown == 2
    assert page.locator("#list li").all_text_contents() == ["Newest", "Middle"]
    page.get_by_role("button", name="Load more").click()
    page.locator("#list li").nth(2).wait_for()
    assert page.locator("#list li").all_text_contents() == ["Newest", "Middle", "Oldest"]
    page.locator("#more").wait_for(state="hidden")
    context.close()
