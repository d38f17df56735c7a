"""In Chromium, against its own URL parser: ?next= only ever leads to a page of this site, and
the sign-out page signs out only when its button is pressed."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from chromium import StandInSite, page_on
from playwright.sync_api import Browser, Page, Route, expect

ORIGIN = "https://client.test"
EMAIL = "sam@example.com"
USER = {"id": "64a000000000000000000001", "email": EMAIL, "iat": 1, "exp": 2}


class Site(StandInSite):
    """The real client app's pages, a stand-in for the APIs, and any other site on the web."""

    def __init__(self) -> None:
        super().__init__(ORIGIN)
        self.user: dict[str, Any] | None = USER
        self.signouts: list[dict[str, str]] = []
        self.elsewhere: list[str] = []

    def handle(self, route: Route) -> None:
        request = route.request
        url = urlsplit(request.url)
        if f"{url.scheme}://{url.netloc}" != ORIGIN:
            self.elsewhere.append(request.url)
            route.fulfill(status=200, content_type="text/html", body="<title>elsewhere</title>")
        elif url.path == "/api/users/currentuser":
            self._json(route, {"currentUser": self.user})
        elif url.path == "/api/users/signout" and request.method == "POST":
            self.signouts.append(request.all_headers())
            self.user = None
            self._json(route, {})
        elif url.path.startswith("/api/"):
            self._json(route, {"errors": [{"message": "Not found"}]}, status=404)
        else:
            self.serve_page(route, url)


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site()
    yield site
    site.close()


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    with page_on(browser, site.handle) as page:
        yield page


@pytest.fixture(scope="module")
def blank_page(browser: Browser) -> Iterator[Page]:
    """One page of this site, for calling dom.js directly."""
    site = Site()
    with page_on(browser, site.handle) as page:
        page.goto(f"{ORIGIN}/not-a-page")
        yield page
    site.close()


def next_path(page: Page, search: str) -> str:
    return page.evaluate(
        "(search) => import('/static/js/dom.js').then((m) => m.nextPathFrom(search))", search
    )


# The query strings as an attacker would write them into a link; each is read by Chromium's
# URLSearchParams and URL parser exactly as the sign-in page reads its own address.
OFF_SITE = [
    "?next=//evil.com",
    "?next=/%09/evil.com",  # tab: dropped by the parser, leaving //evil.com
    "?next=/%0a/evil.com",  # newline
    "?next=/%0d/evil.com",  # carriage return
    "?next=/%0d%0a/evil.com",
    "?next=%09//evil.com",
    "?next=%20//evil.com",  # leading space: trimmed
    "?next=/\\evil.com",  # backslash: a slash in http(s) URLs
    "?next=%2F%5Cevil.com",
    "?next=%5C%5Cevil.com",
    "?next=\\/evil.com",
    "?next=/%2F/evil.com",  # percent-encoded slash, decoded once by the query string
    "?next=%2F%2Fevil.com",
    "?next=https://evil.com/orders",
    "?next=https:/%2Fevil.com",
    "?next=https://client.test@evil.com/",
    "?next=https://client.test.evil.com/",
    "?next=http://client.test/",  # same host, another scheme: another origin
    "?next=javascript:alert(document.cookie)",
    "?next=data:text/html,hi",
    "?next=https://[::1",  # not a URL at all
]


@pytest.mark.parametrize("search", OFF_SITE)
def test_next_never_leaves_the_site(blank_page: Page, search: str) -> None:
    assert next_path(blank_page, search) == "/"


@pytest.mark.parametrize(
    ("search", "path"),
    [
        ("", "/"),
        ("?next=", "/"),
        ("?next=/tickets/new", "/tickets/new"),
        ("?next=%2Forders%3Fpage%3D2%23top", "/orders?page=2#top"),
        ("?next=https://client.test/orders", "/orders"),
        # Resolves to the path //evil.com on this site, which must not be handed on as-is: the
        # browser would read it as the host evil.com.
        ("?next=/.//evil.com", "/evil.com"),
        ("?next=/tickets/..//evil.com", "/evil.com"),
        # Encoded twice: still a path on this site once the parser has read it.
        ("?next=/%252F/evil.com", "/%2F/evil.com"),
        ("?next=/tickets%09/new", "/tickets/new"),
    ],
)
def test_next_keeps_paths_on_this_site(blank_page: Page, search: str, path: str) -> None:
    assert next_path(blank_page, search) == path


@pytest.mark.parametrize(
    "search", ["?next=/%09/evil.com", "?next=/\\evil.com", "?next=/.//evil.com"]
)
def test_a_signed_in_person_sent_to_sign_in_with_a_foreign_next_stays_here(
    page: Page, site: Site, search: str
) -> None:
    page.goto(f"{ORIGIN}/signin{search}")

    page.wait_for_url(lambda url: urlsplit(url).path != "/signin")
    assert urlsplit(page.url).netloc == "client.test"
    expect(page.locator("[data-user-email]")).to_have_text(EMAIL)
    assert site.elsewhere == []


def test_a_signed_in_person_sent_to_sign_in_goes_on_to_next(page: Page, site: Site) -> None:
    page.goto(f"{ORIGIN}/signin?next=%2Forders%3Fpage%3D2")

    page.wait_for_url(f"{ORIGIN}/orders?page=2")
    assert site.elsewhere == []


def test_opening_the_sign_out_page_only_asks(page: Page, site: Site) -> None:
    page.goto(f"{ORIGIN}/signout")

    button = page.get_by_role("button", name="Sign out")
    expect(button).to_be_enabled()
    expect(page.locator("[data-user-email]")).to_have_text(EMAIL)
    assert site.signouts == []
    assert page.url == f"{ORIGIN}/signout"


def test_pressing_sign_out_signs_out_once_and_goes_home(page: Page, site: Site) -> None:
    page.goto(f"{ORIGIN}/signout")

    page.get_by_role("button", name="Sign out").click()

    page.wait_for_url(f"{ORIGIN}/")
    assert len(site.signouts) == 1
    # Sent with this site's Origin, which the services' cross-site guard lets through.
    assert site.signouts[0]["origin"] == ORIGIN
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def test_the_sign_out_page_says_so_to_someone_already_signed_out(page: Page, site: Site) -> None:
    site.user = None

    page.goto(f"{ORIGIN}/signout")

    expect(page.get_by_text("You are signed out.")).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    assert site.signouts == []
