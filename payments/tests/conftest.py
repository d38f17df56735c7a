"""payments' fixtures: the app on localstripe (or an unreachable Stripe), an order, a buyer."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import stripe
from common.events import OrderCreated, UserCreated
from fastapi import FastAPI
from gittix_testing import TestBus, free_port
from payment_events import BUYER_EMAIL, BUYER_ID, order_created, publish_and_settle
from payment_requests import Cookies
from payments.app import create_app
from payments.settings import Settings

STRIPE_KEY = "sk_test_gittix"
WEBHOOK_SECRET = "whsec_gittix_tests"


@pytest.fixture
def app_factory(localstripe: str, service_env: dict[str, str]) -> Callable[..., FastAPI]:
    """create_app on localstripe; `stripe_api_base=` points it elsewhere (e.g. a closed port)."""

    def factory(
        *, database: Any, stripe_api_base: str = localstripe, stripe_timeout_seconds: float = 3
    ) -> FastAPI:
        settings = Settings(  # type: ignore[call-arg]
            stripe_secret_key=STRIPE_KEY,
            stripe_api_base=stripe_api_base,
            # Quick to give up in tests; the SDK would otherwise wait and retry for a minute.
            stripe_timeout_seconds=stripe_timeout_seconds,
            stripe_max_network_retries=0,
            stripe_webhook_secret=WEBHOOK_SECRET,
        )
        return create_app(settings, database=database)

    return factory


@pytest.fixture
def unreachable_stripe() -> str:
    """A Stripe API base where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def stripe_client(localstripe: str) -> AsyncIterator[stripe.StripeClient]:
    """For looking at what localstripe recorded (PaymentIntents, Refunds)."""
    http = stripe.HTTPXClient(timeout=5)
    yield stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe}, http_client=http)
    await http.close_async()


@pytest.fixture
async def order(app: FastAPI, bus: TestBus) -> OrderCreated:
    """An open order of the buyer's (price 25.50), known to payments; the buyer is known too."""
    created = order_created()
    await publish_and_settle(bus, UserCreated(id=BUYER_ID, email=BUYER_EMAIL, version=0), created)
    return created


@pytest.fixture
def buyer(session_cookie: Callable[..., Cookies]) -> Cookies:
    """The session cookies of the buyer `order` belongs to."""
    return session_cookie(BUYER_ID, BUYER_EMAIL)
