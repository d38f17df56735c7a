"""The web client in a real browser (Debian's Chromium via Playwright) against the whole system.

People are driven as they would act: fields found by their labels, buttons and links by their
names, through `make up`'s HTTPS entry point. Chromium trusts the entry point's certificate
because it verifies against the development CA first (see `entry_point_spki`), not because
certificate errors are ignored. With GITTIX_SCREENSHOTS=1 (`make screenshots`) the main pages
are saved under docs/screenshots/, with manifest.json recording what each shows
(devserver.screenshots; tests/test_screenshots.py fails when a page changed since).
"""

import base64
import hashlib
import os
import re
import secrets
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from devserver.harness import RunningSystem
from devserver.screenshots import normalised, record, rendered_html, screen_of
from gittix_testing.waiting import wait_until_sync
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google, which this closed
# network refuses; the sandbox cannot start as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Short enough that a countdown reaches zero within a test, long enough to pay before it does.
EXPIRATION_SECONDS = 25
SYSTEM_ENV = {"ORDER_EXPIRATION_SECONDS": str(EXPIRATION_SECONDS)}
SCREENSHOTS = os.environ.get("GITTIX_SCREENSHOTS") == "1"
SCREENSHOT_DIR = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1200, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}
PASSWORD = "correct horse battery"
# Services settle a purchase or payment through events; give them time on a busy machine.
SETTLE_MS = 20_000
PAY = re.compile(r"^Pay \$")


# -- the browser -----------------------------------------------------------------------------


def entry_point_spki(base_url: str, ca_cert: Path) -> str:
    """The SPKI hash of the entry point's certificate, once that certificate verifies against
    the development CA; Chromium then accepts exactly that key and nothing else."""
    parts = urlsplit(base_url)
    assert parts.hostname is not None and parts.port is not None
    context = ssl.create_default_context(cafile=str(ca_cert))
    with (
        socket.create_connection(("127.0.0.1", parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    spki = (
        x509.load_der_x509_certificate(der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def browser(system: RunningSystem) -> Iterator[Browser]:
    # Fail, never skip: `.ci/run` installs Debian's chromium, so its absence is a broken setup.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    spki = entry_point_spki(system.url, system.ca_cert)
    expect.set_options(timeout=SETTLE_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={spki}"],
        )
        yield browser
        browser.close()


def screenshot(page: Page, name: str) -> None:
    """Saves the picture and records what it shows (docs/screenshots/manifest.json), which
    tests/test_screenshots.py checks against the pages as they are now."""
    if SCREENSHOTS:
        # The manifest hashes the page SCREENS names for this picture: it must be this one.
        assert screen_of(page.url) == name, f"{name}.png would be taken on {page.url}"
        # Fetched by the page itself, so through the browser's own trust in the entry point.
        served = page.evaluate(
            "async () => (await fetch(location.href, {cache: 'no-store'})).text()"
        )
        # What the manifest hashes is the client's page as make up serves it, ids normalised.
        assert normalised(served) == rendered_html(name), (
            f"{page.url} as served differs from its in-process rendering (devserver.screenshots)"
        )
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT_DIR / f"{name}.png")
        record(SCREENSHOT_DIR, name)


# -- a person using the site -----------------------------------------------------------------


@dataclass
class Person:
    """One person in their own browser context (own cookies), acting through the pages."""

    page: Page
    email: str
    base: str
    script_errors: list[str] = field(default_factory=list)

    @property
    def nav(self) -> Locator:
        return self.page.get_by_role("navigation", name="Main")

    def open_site(self) -> None:
        self.page.goto(self.base + "/")
        expect(self.page.get_by_role("heading", name="Tickets for sale")).to_be_visible()

    def sign_up(self) -> None:
        self.open_site()
        self.nav.get_by_role("link", name="Sign up").click()
        self.fill_sign_up()
        expect(self.nav).to_contain_text(self.email)

    def fill_sign_up(self) -> None:
        self.page.get_by_label("Email").fill(self.email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign up").click()

    def sell(self, title: str, price: str) -> str:
        self.nav.get_by_role("link", name="Sell a ticket").click()
        self.page.get_by_label("Title").fill(title)
        self.page.get_by_label("Price (USD)").fill(price)
        self.page.get_by_role("button", name="Sell ticket").click()
        expect(self.page.get_by_role("heading", name=title)).to_be_visible()
        expect(self.page.get_by_text("This is your ticket.")).to_be_visible()
        return self.page.url

    def buy(self, ticket_url: str) -> str:
        self.page.goto(ticket_url)
        self.page.get_by_role("button", name="Purchase").click()
        expect(self.page.get_by_role("heading", name="Your order")).to_be_visible()
        expect(self.order_status).to_have_text("Waiting for payment")
        return self.page.url

    @property
    def order_status(self) -> Locator:
        return self.page.locator("#order-status")


People = Callable[..., Person]


@pytest.fixture
def people(browser: Browser, system: RunningSystem) -> Iterator[People]:
    """Makes people, each with a fresh email and browser context; none may hit a script error."""
    run = secrets.token_hex(3)  # emails stay new in a system the module's tests share
    contexts: list[BrowserContext] = []
    made: list[Person] = []

    def make(name: str, viewport: ViewportSize = DESKTOP) -> Person:
        # ignore_https_errors stays False: a certificate problem must fail the test.
        context = browser.new_context(viewport=viewport, ignore_https_errors=False)
        context.set_default_timeout(SETTLE_MS)
        contexts.append(context)
        page = context.new_page()
        someone = Person(page, f"{name}.{run}@example.com", system.url)
        page.on("pageerror", lambda error: someone.script_errors.append(str(error)))
        made.append(someone)
        return someone

    yield make
    for context in contexts:
        context.close()
    assert [error for someone in made for error in someone.script_errors] == []


# -- the flows ---------------------------------------------------------------------------------


def test_a_seller_lists_a_ticket_and_a_second_person_buys_and_pays_for_it(
    system: RunningSystem, people: People
) -> None:
    title = "Eras Tour, floor, row 12"
    seller = people("sam.seller")
    seller.sign_up()
    ticket_url = seller.sell(title, "185")
    expect(seller.page.get_by_text("$185.00")).to_be_visible()

    buyer = people("bea.buyer")
    buyer.open_site()
    listing = buyer.page.get_by_role("list", name="Tickets for sale").get_by_role("listitem")
    ticket_item = listing.filter(has=buyer.page.get_by_role("link", name=title, exact=True))
    expect(ticket_item).to_contain_text("$185.00")
    screenshot(buyer.page, "landing")

    ticket_item.get_by_role("link", name=title).click()
    expect(buyer.page.get_by_role("heading", name=title)).to_be_visible()
    buyer.page.get_by_role("link", name="Sign in to buy this ticket").click()
    expect(buyer.page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(buyer.nav.get_by_role("link", name="Sign up")).to_be_visible()
    screenshot(buyer.page, "sign-in")
    buyer.page.get_by_role("link", name="Create an account").click()
    buyer.fill_sign_up()
    # Signing up from a ticket leads back to that ticket.
    expect(buyer.page).to_have_url(ticket_url)
    expect(buyer.nav).to_contain_text(buyer.email)
    expect(buyer.page.get_by_text("$185.00")).to_be_visible()
    screenshot(buyer.page, "ticket")

    buyer.page.get_by_role("button", name="Purchase").click()
    expect(buyer.page.get_by_role("heading", name="Your order")).to_be_visible()
    order_url = buyer.page.url
    expect(buyer.order_status).to_have_text("Waiting for payment")
    expect(buyer.page.get_by_role("timer")).to_have_text(
        re.compile(r"^Time left to pay: \d+:\d\d$")
    )
    expect(buyer.page.get_by_label("Visa (succeeds)")).to_be_checked()
    expect(buyer.page.get_by_role("button", name="Pay $185.00")).to_be_visible()
    screenshot(buyer.page, "order")

    # Back to the ticket and forward again: both pages show what is true now.
    buyer.page.go_back()
    expect(buyer.page.get_by_text("You have reserved this ticket.")).to_be_visible()
    expect(buyer.page.get_by_role("button", name="Purchase")).to_have_count(0)
    buyer.page.go_forward()
    expect(buyer.page).to_have_url(order_url)

    buyer.page.get_by_role("button", name="Pay $185.00").click()
    expect(buyer.page.get_by_text("Order completed.")).to_be_visible()
    expect(buyer.order_status).to_have_text("Completed")
    expect(buyer.page.get_by_role("timer")).to_be_hidden()
    expect(buyer.page.get_by_role("button", name=PAY)).to_be_hidden()

    buyer.nav.get_by_role("link", name="My orders").click()
    order_item = buyer.page.get_by_role("list", name="Your orders").get_by_role("listitem")
    expect(order_item).to_have_count(1)
    expect(order_item).to_contain_text(title)
    expect(order_item).to_contain_text("$185.00")
    expect(order_item).to_contain_text("Completed")
    screenshot(buyer.page, "my-orders")

    buyer.page.go_back()
    expect(buyer.order_status).to_have_text("Completed")
    buyer.page.go_back()  # the ticket page, as it was left before paying
    expect(buyer.page.get_by_text("You bought this ticket.")).to_be_visible()

    # The seller sees the ticket sold: off the market, no longer editable.
    seller.open_site()
    expect(seller.page.get_by_role("link", name=title, exact=True)).to_have_count(0)
    seller.page.goto(ticket_url)
    expect(seller.page.get_by_text("A buyer has reserved or bought this ticket")).to_be_visible()
    # It stays in the seller's own list, marked, without its Edit link.
    seller.nav.get_by_role("link", name="My tickets").click()
    sold = seller.page.get_by_role("list", name="Your tickets").get_by_role("listitem")
    listed = sold.filter(has_text=title)
    expect(listed).to_have_count(1)

    # Tickets learns of the payment from OrderUpdated, a moment after the buyer saw it: the
    # list is read once per page load, so look again until it says so.
    def listed_as_sold() -> bool:
        if "Sold" in listed.inner_text():
            return True
        seller.page.reload()
        expect(listed).to_have_count(1)
        return False

    wait_until_sync(listed_as_sold, timeout=20, message="the seller's list never said Sold")
    expect(sold.filter(has_text=title).get_by_role("link", name="Edit")).to_have_count(0)
    seller.page.goto(order_url)
    expect(seller.page.get_by_text("This order belongs to someone else.")).to_be_visible()
    expect(seller.page.get_by_role("button", name=PAY)).to_be_hidden()


def test_a_declined_card_is_reported_and_the_ticket_is_for_sale_again(
    system: RunningSystem, people: People
) -> None:
    title = "Jazz night, balcony"
    seller = people("dee.seller")
    seller.sign_up()
    ticket_url = seller.sell(title, "42.50")

    buyer = people("dan.buyer")
    buyer.sign_up()
    buyer.buy(ticket_url)
    buyer.page.get_by_label("Visa (declined)").check()
    buyer.page.get_by_role("button", name="Pay $42.50").click()

    expect(buyer.page.get_by_role("alert")).to_contain_text("Your card was declined.")
    expect(buyer.order_status).to_have_text("Cancelled")
    expect(buyer.page.get_by_role("button", name=PAY)).to_be_hidden()

    # The cancelled order unlocks the ticket (through the events), so it can be bought again.
    expect(buyer.page.get_by_role("link", name=title)).to_be_visible()
    buyer.page.get_by_role("link", name=title).click()
    expect(buyer.page.get_by_role("button", name="Purchase")).to_be_visible(timeout=SETTLE_MS)
    buyer.nav.get_by_role("link", name="My orders").click()
    expect(buyer.page.get_by_role("list", name="Your orders")).to_contain_text("Cancelled")


def test_form_errors_are_shown_next_to_the_field_they_concern(
    system: RunningSystem, people: People
) -> None:
    someone = people("val")
    page = someone.page
    # Signed out, "Sell a ticket" asks to sign in first and comes back afterwards.
    page.goto(system.url + "/tickets/new")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    expect(page.get_by_role("heading", name="Sign up")).to_be_visible()

    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#email-error")).to_have_text("Email must be valid")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_have_text(re.compile("8 and 128 characters"))

    someone.fill_sign_up()
    expect(someone.nav).to_contain_text(someone.email)
    expect(page.get_by_role("heading", name="Sell a ticket")).to_be_visible()

    page.get_by_role("button", name="Sell ticket").click()
    expect(page.locator("#title-error")).to_have_text("Enter a title.")
    page.get_by_label("Title").fill("Opera, box 3")
    page.get_by_label("Price (USD)").fill("0")
    page.get_by_role("button", name="Sell ticket").click()
    # The API's own verdict, beside the field it names.
    expect(page.locator("#price-error")).not_to_be_empty()
    expect(page.locator("#title-error")).to_be_empty()
    expect(page.get_by_label("Price (USD)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Price (USD)")).to_be_focused()
    page.get_by_label("Price (USD)").fill("12.345")
    page.get_by_role("button", name="Sell ticket").click()
    expect(page.locator("#price-error")).not_to_be_empty()
    page.get_by_label("Price (USD)").fill("12.35")
    page.get_by_role("button", name="Sell ticket").click()
    expect(page.get_by_role("heading", name="Opera, box 3")).to_be_visible()
    expect(page.get_by_text("$12.35")).to_be_visible()

    # An error that concerns no field is shown at the top of the form.
    someone.nav.get_by_role("link", name="Sign out").click()
    # The link only asks; the button signs out.
    expect(someone.nav).to_contain_text(someone.email)
    page.get_by_role("button", name="Sign out").click()
    expect(someone.nav.get_by_role("link", name="Sign in")).to_be_visible()
    someone.nav.get_by_role("link", name="Sign in").click()
    page.get_by_label("Email").fill(someone.email)
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text=re.compile(r"\w"))).to_be_visible()
    expect(page.locator("#password-error")).to_be_empty()


def test_a_person_on_a_phone_uses_only_the_keyboard_to_sell_and_edit(
    system: RunningSystem, people: People
) -> None:
    someone = people("kim", viewport=PHONE)
    page = someone.page
    page.goto(system.url + "/signup")
    page.get_by_label("Email").focus()
    page.keyboard.type(someone.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(someone.nav).to_contain_text(someone.email)

    page.goto(system.url + "/tickets/new")
    page.get_by_label("Title").focus()
    page.keyboard.type("Cup final, north stand")
    page.keyboard.press("Tab")
    page.keyboard.type("60")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Cup final, north stand")).to_be_visible()
    expect(page.get_by_text("$60.00")).to_be_visible()

    page.get_by_role("link", name="Edit ticket").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Price (USD)")).to_have_value("60.00")
    page.get_by_label("Price (USD)").fill("55.5")
    page.get_by_label("Price (USD)").press("Enter")
    expect(page.get_by_role("heading", name="Cup final, north stand")).to_be_visible()
    expect(page.get_by_text("$55.50")).to_be_visible()

    for path in ("/", "/tickets/mine", "/orders", page.url):
        page.goto(system.url + path if path.startswith("/") else path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a phone by {overflow}px"


def test_the_countdown_reaches_zero_and_the_order_expires(
    system: RunningSystem, people: People
) -> None:
    title = "Comedy club, front table"
    seller = people("eve.seller")
    seller.sign_up()
    ticket_url = seller.sell(title, "30")
    buyer = people("ed.buyer")
    buyer.sign_up()
    order_url = buyer.buy(ticket_url)

    timer = buyer.page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^Time left to pay: 0:[0-2]\d$"))
    buyer.nav.get_by_role("link", name="My orders").click()
    open_order = buyer.page.get_by_role("list", name="Your orders").get_by_role("listitem")
    expect(open_order).to_contain_text("Waiting for payment")
    expect(open_order.get_by_role("timer")).to_have_text(re.compile(r"^Time left: 0:[0-2]\d$"))
    buyer.page.go_back()
    expect(buyer.page).to_have_url(order_url)

    expect(timer).to_have_text("Order expired", timeout=(EXPIRATION_SECONDS + 10) * 1000)
    expect(buyer.page.get_by_role("button", name=PAY)).to_be_hidden()
    # The system cancels the order by itself (expiration -> orders) and the page follows it.
    expect(buyer.order_status).to_have_text("Cancelled")
    expect(timer).to_have_text("Order expired")

    buyer.page.get_by_role("link", name=title).click()
    expect(buyer.page.get_by_role("button", name="Purchase")).to_be_visible()


# -- 3-D Secure (localstripe's Stripe.js stand-in asks "Complete" or "Fail authentication") --


def pay_with_3ds(system: RunningSystem, people: People, who: str, price: str) -> Person:
    seller = people(f"{who}.seller")
    seller.sign_up()
    ticket_url = seller.sell(f"Quartet at dusk ({who})", price)
    buyer = people(f"{who}.buyer")
    buyer.sign_up()
    buyer.buy(ticket_url)
    buyer.page.get_by_label("Visa (asks for 3-D Secure)").check()
    buyer.page.get_by_role("button", name=f"Pay ${price}").click()
    return buyer


def test_a_card_asking_for_3ds_is_confirmed_in_the_bank_challenge_and_the_order_completes(
    system: RunningSystem, people: People
) -> None:
    buyer = pay_with_3ds(system, people, "sca.ok", "64.00")

    expect(buyer.page.get_by_text("Your bank asks you to confirm this payment")).to_be_visible()
    expect(buyer.order_status).to_have_text("Waiting for payment")
    buyer.page.get_by_role("button", name="Complete authentication").click()

    expect(buyer.order_status).to_have_text("Completed")
    expect(buyer.page.get_by_text("Order completed.")).to_be_visible()
    expect(buyer.page.get_by_role("button", name=PAY)).to_be_hidden()


def test_a_failed_3ds_challenge_cancels_the_order_with_a_plain_reason(
    system: RunningSystem, people: People
) -> None:
    buyer = pay_with_3ds(system, people, "sca.fail", "33.00")

    buyer.page.get_by_role("button", name="Fail authentication").click()

    expect(buyer.page.get_by_role("alert")).to_contain_text("3-D Secure was not completed")
    expect(buyer.order_status).to_have_text("Cancelled")
    expect(buyer.page.get_by_role("button", name=PAY)).to_be_hidden()


def test_a_tab_closed_after_the_challenge_is_completed_by_stripes_webhook(
    system: RunningSystem, people: People
) -> None:
    buyer = pay_with_3ds(system, people, "sca.gone", "71.00")
    order_url = buyer.page.url
    # The tab dies after the bank's challenge: GitTix never hears from this page again.
    buyer.page.route("**/api/payments", lambda route: route.abort())
    buyer.page.get_by_role("button", name="Complete authentication").click()
    expect(buyer.page.get_by_role("button", name="Complete authentication")).to_be_hidden()
    buyer.page.close()

    page = buyer.page.context.new_page()
    page.goto(order_url)
    # Stripe's signed webhook (payment_intent.succeeded) completes the order on its own.
    expect(page.locator("#order-status")).to_have_text("Completed", timeout=SETTLE_MS)
