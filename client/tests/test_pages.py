"""Every page is served with its header, its labelled fields and named buttons, and its script."""

import re

import httpx
import pytest
from page_markup import parse_page

TICKET_ID = "65a1b2c3d4e5f60718293a4b"
ORDER_ID = "65a1b2c3d4e5f60718293a4c"

PAGES = {
    "/": "Tickets for sale",
    "/signup": "Sign up",
    "/signin": "Sign in",
    "/signout": "Sign out",
    "/tickets/new": "Sell a ticket",
    "/tickets/mine": "My tickets",
    f"/tickets/{TICKET_ID}": "Ticket",
    f"/tickets/{TICKET_ID}/edit": "Edit ticket",
    "/orders": "My orders",
    f"/orders/{ORDER_ID}": "Your order",
}


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_with_the_header_links_for_both_states(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse_page(response.text)
    assert page.title == f"{PAGES[path]} · GitTix"
    for name in (
        "GitTix",
        "Sign up",
        "Sign in",
        "Sell a ticket",
        "My tickets",
        "My orders",
        "Sign out",
    ):
        page.link_named(name)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_script_and_every_module_it_imports_is_served(
    client: httpx.AsyncClient, path: str
) -> None:
    page = parse_page((await client.get(path)).text)
    local = [src for src in page.scripts if src.startswith("/static/")]
    assert len(local) == 1

    pending, seen = list(local), set()
    while pending:
        url = pending.pop()
        if url in seen:
            continue
        seen.add(url)
        module = await client.get(url)
        assert module.status_code == 200, url
        assert "javascript" in module.headers["content-type"]
        base = httpx.URL("https://testserver" + url)
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', module.text):
            pending.append(base.join(target).path)
    assert len(seen) >= 2  # the page module and the shared modules it builds on


async def test_sign_up_form_has_labelled_email_and_password_and_a_sign_up_button(
    client: httpx.AsyncClient,
) -> None:
    page = parse_page((await client.get("/signup")).text)

    assert page.input_labelled("Email").attrs["type"] == "email"
    password = page.input_labelled("Password")
    assert password.attrs["type"] == "password"
    assert password.attrs["autocomplete"] == "new-password"
    assert page.button_named("Sign up").attrs["type"] == "submit"


async def test_sign_in_form_has_labelled_email_and_password_and_a_sign_in_button(
    client: httpx.AsyncClient,
) -> None:
    page = parse_page((await client.get("/signin")).text)

    assert page.input_labelled("Email").attrs["name"] == "email"
    assert page.input_labelled("Password").attrs["autocomplete"] == "current-password"
    page.button_named("Sign in")


@pytest.mark.parametrize(
    ("path", "button"),
    [
        ("/tickets/new", "Sell ticket"),
        (f"/tickets/{TICKET_ID}/edit", "Save changes"),
    ],
)
async def test_ticket_forms_have_labelled_title_and_price(
    client: httpx.AsyncClient, path: str, button: str
) -> None:
    page = parse_page((await client.get(path)).text)

    assert page.input_labelled("Title").attrs["name"] == "title"
    price = page.input_labelled("Price (USD)")
    assert price.attrs["name"] == "price"
    assert price.attrs["inputmode"] == "decimal"
    page.button_named(button)


async def test_every_field_error_slot_is_announced_with_its_field(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/signup", "/signin", "/tickets/new"):
        page = parse_page((await client.get(path)).text)
        for control in page.inputs.values():
            described_by = control.attrs.get("aria-describedby", "").split()
            assert f"{control.attrs['id']}-error" in described_by, (path, control.attrs)


async def test_pages_work_on_a_phone_width(client: httpx.AsyncClient) -> None:
    html = (await client.get("/")).text

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<html lang="en">' in html


async def test_pages_carry_a_content_security_policy_that_allows_only_own_scripts(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")

    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy
    assert "stripe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_health_endpoints_answer_without_any_backing_service(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).status_code == 200
