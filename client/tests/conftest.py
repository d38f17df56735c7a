"""client's fixtures: the app in test mode (no publishable key), an HTTP client for it, and one
Chromium per test module for the tests that run the pages' JS."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from chromium import launch_chromium
from client.app import create_app
from client.settings import Settings
from gittix_testing import http_client, running
from playwright.sync_api import Browser


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(stripe_publishable_key=None))
    async with running(app), http_client(app) as http:
        yield http


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as browser:
        yield browser
