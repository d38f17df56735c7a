"""Debian's Chromium under Playwright, for tests that run the pages' JavaScript for real."""

import asyncio
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult

import httpx
from client.app import create_app
from client.settings import Settings
from playwright.sync_api import Browser, Page, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    # Fail, never skip: CI installs Debian's chromium.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


class StandInSite:
    """The real client app's pages, rendered in-process for Chromium; a subclass's `handle`
    answers the APIs and sends every other request to `serve_page`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.app = create_app(Settings(stripe_publishable_key=None))
        # Playwright's sync API owns this thread's event loop: pages are rendered on another.
        self.renderer = ThreadPoolExecutor(max_workers=1)

    def serve_page(self, route: Route, url: SplitResult) -> None:
        target = url.path + (f"?{url.query}" if url.query else "")
        page = self.renderer.submit(asyncio.run, self._render(target)).result(timeout=10)
        route.fulfill(status=page.status_code, headers=dict(page.headers), body=page.content)

    async def _render(self, target: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=self.origin) as client:
            return await client.get(target)

    @staticmethod
    def _json(route: Route, body: Any, status: int = 200) -> None:
        route.fulfill(status=status, content_type="application/json", body=json.dumps(body))

    def close(self) -> None:
        self.renderer.shutdown()


@contextmanager
def page_on(browser: Browser, handler: Callable[[Route], None]) -> Iterator[Page]:
    """A fresh page whose every request `handler` answers."""
    context = browser.new_context()
    context.route("**/*", handler)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()
