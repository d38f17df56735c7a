"""format.js in Chromium: how money, time left and typed prices read on every page."""

import mimetypes
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import launch_chromium
from playwright.sync_api import Page, Route

STATIC = Path(__file__).resolve().parents[1] / "src" / "client" / "static"
ORIGIN = "https://client.test"


def serve_static(route: Route) -> None:
    # The files straight from disk, as /static/... would serve them; no server needed.
    path = route.request.url.removeprefix(ORIGIN)
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>t</title>")
        return
    file = STATIC / path.removeprefix("/static/")
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    route.fulfill(status=200, content_type=kind, body=file.read_bytes())


@pytest.fixture(scope="module")
def page() -> Iterator[Page]:
    with launch_chromium() as browser:
        page = browser.new_page()
        page.route(f"{ORIGIN}/**", serve_static)
        page.goto(f"{ORIGIN}/")
        yield page


def call(page: Page, function: str, *args: Any) -> Any:
    return page.evaluate(
        "([fn, args]) => import('/static/js/format.js').then((m) => m[fn](...args))",
        [function, list(args)],
    )


@pytest.mark.parametrize(
    ("price", "shown"), [(20, "$20.00"), (12.5, "$12.50"), (0.01, "$0.01"), (1234.5, "$1,234.50")]
)
def test_money_has_a_currency_symbol_and_two_decimals(page: Page, price: float, shown: str) -> None:
    assert call(page, "formatMoney", price) == shown


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (900_000, "15:00"),
        (899_001, "15:00"),
        (61_000, "1:01"),
        (1, "0:01"),
        (0, "0:00"),
        (-5_000, "0:00"),
        (3_723_000, "1:02:03"),
    ],
)
def test_time_left_reads_as_minutes_and_seconds(page: Page, ms: int, shown: str) -> None:
    assert call(page, "formatTimeLeft", ms) == shown


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("20", 20),
        (" $12.50 ", 12.5),
        ("1,000", 1000),
        ("0", 0),
        ("-5", -5),
        ("12.345", 12.345),
        (".5", 0.5),
        ("abc", None),
        ("", None),
        ("12..5", None),
        ("1e3", None),
    ],
)
def test_a_typed_price_becomes_a_number_or_nothing(
    page: Page, typed: str, number: float | None
) -> None:
    # Zero, negatives and extra decimals go through: the API's message explains what is wrong.
    assert call(page, "parsePrice", typed) == number


def test_every_order_status_has_words(page: Page) -> None:
    labels = [
        call(page, "statusLabel", s)
        for s in ("created", "awaiting_payment", "completed", "cancelled")
    ]
    assert labels == ["Waiting for payment", "Payment processing", "Completed", "Cancelled"]
