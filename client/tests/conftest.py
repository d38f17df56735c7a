"""client's fixtures: the app in test mode (no publishable key) and an HTTP client for it."""

from collections.abc import AsyncIterator

import httpx
import pytest
from client.app import create_app
from client.settings import Settings
from gittix_testing import http_client, running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(stripe_publishable_key=None))
    async with running(app), http_client(app) as http:
        yield http
