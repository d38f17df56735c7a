"""The order page's payment form: test cards without a publishable key, Elements with one."""

import httpx
from client.app import create_app
from client.settings import Settings
from gittix_testing import http_client, running
from page_markup import parse_page

ORDER_PATH = "/orders/65a1b2c3d4e5f60718293a4c"


async def test_without_a_publishable_key_the_test_cards_are_offered_and_visa_is_chosen(
    client: httpx.AsyncClient,
) -> None:
    page = parse_page((await client.get(ORDER_PATH)).text)

    visa = page.input_labelled("Visa (succeeds)")
    declined = page.input_labelled("Visa (declined)")
    assert visa.attrs["type"] == declined.attrs["type"] == "radio"
    assert visa.attrs["name"] == declined.attrs["name"] == "token"
    assert visa.attrs["value"] == "pm_card_visa"
    assert "checked" in visa.attrs
    assert declined.attrs["value"] == "pm_card_visa_chargeDeclined"
    assert "checked" not in declined.attrs
    page.button_named("Pay")
    assert not any("stripe.com" in src for src in page.scripts)


async def test_with_a_publishable_key_stripe_elements_replaces_the_test_cards() -> None:
    app = create_app(Settings(stripe_publishable_key="pk_test_123abc"))
    async with running(app), http_client(app) as client:
        response = await client.get(ORDER_PATH)

    page = parse_page(response.text)
    assert "https://js.stripe.com/v3/" in page.scripts
    assert '<meta name="stripe-publishable-key" content="pk_test_123abc">' in response.text
    assert 'id="card-element"' in response.text
    assert "pm_card_visa" not in response.text
    page.button_named("Pay")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com;" in policy
    assert "frame-src https://js.stripe.com https://hooks.stripe.com;" in policy


async def test_stripe_js_is_loaded_only_on_the_order_page() -> None:
    app = create_app(Settings(stripe_publishable_key="pk_test_123abc"))
    async with running(app), http_client(app) as client:
        landing = await client.get("/")

    assert "js.stripe.com" not in landing.text
    assert "pk_test_123abc" not in landing.text


async def test_with_a_stripe_js_url_the_3ds_test_card_is_offered_and_its_origin_allowed() -> None:
    js = "http://127.0.0.1:8420/js.stripe.com/v3/"
    app = create_app(Settings(stripe_js_url=js))
    async with running(app), http_client(app) as client:
        response = await client.get(ORDER_PATH)

    page = parse_page(response.text)
    card = page.input_labelled("Visa (asks for 3-D Secure)")
    assert card.attrs["value"] == "pm_card_authenticationRequired"
    assert "checked" not in card.attrs
    assert js in page.scripts
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' http://127.0.0.1:8420;" in policy
    assert "connect-src 'self' http://127.0.0.1:8420;" in policy


async def test_without_a_stripe_js_url_no_3ds_card_is_offered(client: httpx.AsyncClient) -> None:
    response = await client.get(ORDER_PATH)

    assert "pm_card_authenticationRequired" not in response.text
