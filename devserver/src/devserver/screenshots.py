"""What each README screenshot (docs/screenshots/) was taken of, as hashes a test can recompute.

Pixels depend on the machine's fonts, so the pictures themselves are never compared. What a
picture shows is determined by what Chromium loaded for it: the page's HTML as the web client
serves it and every static file that page pulls in (stylesheets, module scripts and the modules
they import). `make screenshots` (e2e/test_browser.py with GITTIX_SCREENSHOTS=1) records a hash of
those, per picture, in docs/screenshots/manifest.json; tests/test_screenshots.py renders the same
pages in-process now, without a browser, and names every picture whose hash differs.

Volatile values are normalised in both: object ids become PLACEHOLDER_ID, and the fake Stripe's
port (in the Stripe.js URL the order page names) becomes 0. The data on the pages comes from the
APIs during e2e/test_browser.py's purchase and is not part of the hash.
"""

import asyncio
import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from client.app import create_app
from client.settings import Settings
from fastapi import FastAPI

from devserver.infrastructure import fake_stripe_env
from devserver.system import repo_root

MANIFEST_NAME = "manifest.json"
PLACEHOLDER_ID = "0" * 24
OBJECT_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{24}(?![0-9a-f])")
# make up's fake Stripe listens on a free port; the order page names it in the Stripe.js URL.
LOCAL_PORT = re.compile(r"(http://127\.0\.0\.1):\d+")

# Each picture and the page (path and query, ids normalised) the browser is on when it is taken.
SCREENS: dict[str, str] = {
    "landing": "/",
    "sign-in": f"/signin?next=%2Ftickets%2F{PLACEHOLDER_ID}",
    "ticket": f"/tickets/{PLACEHOLDER_ID}",
    "order": f"/orders/{PLACEHOLDER_ID}",
    "my-orders": "/orders",
}

# Module imports: `import x from "./a.js"`, `import "./a.js"` and `import("./a.js")`.
JS_IMPORT = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}/[^"']+|/static/[^"']+)["']"""
)
CSS_URL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])([^"')\s]+)""")


def screenshot_dir() -> Path:
    return repo_root() / "docs" / "screenshots"


def normalised(text: str) -> str:
    """`text` with the values that differ from run to run replaced by fixed ones."""
    return LOCAL_PORT.sub(r"\1:0", OBJECT_ID.sub(PLACEHOLDER_ID, text))


def screen_of(url: str) -> str | None:
    """The picture taken on the page at `url` (any origin), if any."""
    parts = urlsplit(url)
    page = normalised(parts.path + (f"?{parts.query}" if parts.query else ""))
    return next((name for name, screen_page in SCREENS.items() if screen_page == page), None)


def client_app() -> FastAPI:
    """The web client as `make up` configures it (test cards, Stripe.js from the fake Stripe),
    with the fake Stripe's port normalised; no lifespan runs, nothing is connected."""
    stripe_js_url = fake_stripe_env(0, "whsec_unused")["STRIPE_JS_URL"]
    return create_app(Settings.model_construct(stripe_js_url=stripe_js_url))


class _PageLoads(HTMLParser):
    """The same-origin stylesheets, scripts and images a page's HTML names."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "link" and "stylesheet" in values.get("rel", "").split():
            self.urls.append(values.get("href", ""))
        elif tag in ("script", "img") and values.get("src"):
            self.urls.append(values["src"])


def _same_origin(url: str) -> bool:
    return url.startswith("/") and not url.startswith("//")


def _loaded_by(url: str, body: str) -> list[str]:
    if url.endswith(".js"):
        found = JS_IMPORT.findall(body)
    elif url.endswith(".css"):
        found = [ref for ref in CSS_URL.findall(body) if not ref.startswith("data:")]
    else:
        return []
    return [urljoin(url, ref) for ref in found]


async def page_inputs(http: httpx.AsyncClient, page: str) -> dict[str, bytes]:
    """The page's HTML (normalised) and every same-origin file it loads, by URL path."""
    response = await http.get(page)
    response.raise_for_status()
    html = normalised(response.text)
    inputs = {page: html.encode()}
    parser = _PageLoads()
    parser.feed(html)
    pending = [url for url in parser.urls if _same_origin(url)]
    while pending:
        url = pending.pop()
        if url in inputs:
            continue
        loaded = await http.get(url)
        if loaded.status_code != 200:
            raise LookupError(f"{page} loads {url}, which answers {loaded.status_code}")
        inputs[url] = loaded.content
        pending.extend(ref for ref in _loaded_by(url, loaded.text) if _same_origin(ref))
    return inputs


def fingerprint(inputs: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for url in sorted(inputs):
        digest.update(f"{url} {hashlib.sha256(inputs[url]).hexdigest()}\n".encode())
    return digest.hexdigest()


async def _serve_every_screen() -> dict[str, dict[str, bytes]]:
    transport = httpx.ASGITransport(app=client_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://client") as http:
        return {name: await page_inputs(http, page) for name, page in SCREENS.items()}


def served_inputs() -> dict[str, dict[str, bytes]]:
    """Every picture's page_inputs, the client app served in-process."""
    # A thread of its own: callers may be inside an event loop (Playwright's sync API is).
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, _serve_every_screen()).result()


def rendered_html(name: str) -> str:
    """The normalised HTML of the page picture `name` is taken on, served in-process."""
    return served_inputs()[name][SCREENS[name]].decode()


def render_manifest() -> dict[str, dict[str, Any]]:
    """Every picture's entry as the manifest should hold it for the pages as they are now."""
    return {
        name: {
            "page": SCREENS[name],
            "loads": sorted(url for url in inputs if url != SCREENS[name]),
            "sha256": fingerprint(inputs),
        }
        for name, inputs in served_inputs().items()
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_NAME
    return dict(json.loads(path.read_text())) if path.exists() else {}


def record(directory: Path, *names: str) -> None:
    """After these pictures were taken: their entries become what the pages are now (the
    others stay as they were)."""
    manifest = read_manifest(directory)
    now = render_manifest()
    manifest.update({name: now[name] for name in names})
    ordered = {key: manifest[key] for key in sorted(manifest)}
    (directory / MANIFEST_NAME).write_text(json.dumps(ordered, indent=2) + "\n")


def stale_screenshots(directory: Path) -> list[str]:
    """The pictures whose recorded inputs differ from the pages now, or that are missing."""
    recorded = read_manifest(directory)
    return [
        name
        for name, entry in render_manifest().items()
        if recorded.get(name) != entry or not (directory / f"{name}.png").exists()
    ]
