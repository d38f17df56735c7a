"""The guards in front of every service: body size limit (413) and cross-site writes (403)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from common.errors import install_error_handlers
from common.request_guards import install_request_guards
from common.settings import ServiceSettings
from common.types import CamelModel
from fastapi import FastAPI, Request

LIMIT = 1024
TOO_LARGE = {"errors": [{"message": "Request body is too large (at most 1 KiB)"}]}
CROSS_SITE = {"errors": [{"message": "Cross-site request refused"}]}


class Note(CamelModel):
    text: str


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    install_request_guards(
        app,
        max_body_bytes=LIMIT,
        larger_bodies={"/webhooks": 4 * LIMIT},
        trusted_origins=["https://partner.example/"],
    )

    @app.post("/notes")
    async def create(note: Note) -> dict[str, int]:
        return {"length": len(note.text)}

    @app.put("/notes/{note_id}")
    async def edit(note_id: str, note: Note) -> dict[str, int]:
        return {"length": len(note.text)}

    @app.delete("/notes/{note_id}")
    async def remove(note_id: str) -> dict[str, str]:
        return {"deleted": note_id}

    @app.get("/notes")
    async def read() -> dict[str, str]:
        return {"notes": "none"}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        # Reads the stream itself, as a webhook verifying a signature over raw bytes would.
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.post("/webhooks")
    async def webhook(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as http:
        yield http


def note_of(size: int) -> bytes:
    # {"text":"xxx..."} of exactly `size` bytes.
    return b'{"text":"' + b"x" * (size - 11) + b'"}'


async def chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


# --- body size ---------------------------------------------------------------------------------


async def test_a_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    body = note_of(LIMIT)
    assert len(body) == LIMIT

    response = await client.post(
        "/notes", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"length": LIMIT - 11}


async def test_a_declared_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/notes", content=note_of(LIMIT + 1), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json() == TOO_LARGE


@pytest.mark.parametrize("path", ["/notes", "/raw"])
async def test_a_streamed_body_without_length_over_the_limit_is_413(
    client: httpx.AsyncClient, path: str
) -> None:
    # Chunked: no Content-Length to refuse up front, so the bytes are counted as they arrive.
    response = await client.post(
        path, content=chunks(note_of(LIMIT + 1)), headers={"content-type": "application/json"}
    )

    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_a_streamed_body_within_the_limit_is_read_whole(client: httpx.AsyncClient) -> None:
    response = await client.post("/raw", content=chunks(note_of(LIMIT)))

    assert response.status_code == 200
    assert response.json() == {"size": LIMIT}


async def test_a_lying_content_length_does_not_get_past_the_limit(
    client: httpx.AsyncClient,
) -> None:
    # Claims a small body, sends a large one in chunks.
    response = await client.post(
        "/raw", content=chunks(b"x" * (LIMIT * 3)), headers={"content-length": "10"}
    )

    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_a_route_given_a_larger_limit_takes_more_but_not_unlimited(
    client: httpx.AsyncClient,
) -> None:
    accepted = await client.post("/webhooks", content=b"x" * (4 * LIMIT))
    refused = await client.post("/webhooks", content=b"x" * (4 * LIMIT + 1))

    assert accepted.status_code == 200
    assert accepted.json() == {"size": 4 * LIMIT}
    assert refused.status_code == 413
    assert refused.json() == {"errors": [{"message": "Request body is too large (at most 4 KiB)"}]}


# --- cross-site writes -------------------------------------------------------------------------

SAME_ORIGIN = {"origin": "https://api.test", "sec-fetch-site": "same-origin"}


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser: curl, a test, another service
        SAME_ORIGIN,
        {"sec-fetch-site": "none"},  # typed or bookmarked by the person themselves
        {"origin": "https://api.test"},  # a browser too old for Sec-Fetch-Site
        {"origin": "https://api.test", "x-forwarded-host": "api.test"},
        {"origin": "https://partner.example", "sec-fetch-site": "cross-site"},  # trusted
    ],
)
async def test_writes_from_our_own_pages_and_from_non_browsers_go_through(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await client.post("/notes", json={"text": "hi"}, headers=headers)
    edited = await client.put("/notes/1", json={"text": "hey"}, headers=headers)
    deleted = await client.delete("/notes/1", headers=headers)

    assert (created.status_code, edited.status_code, deleted.status_code) == (200, 200, 200)


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "cross-site"},
        # Another subdomain of the same site is still another site's page.
        {"origin": "https://evil.api.test", "sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "null"},  # a sandboxed frame, or a redirect from elsewhere
        {"origin": "https://api.test.evil.example"},
        # The trusted origin must match whole, not by prefix.
        {"origin": "https://partner.example.evil.example", "sec-fetch-site": "cross-site"},
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_writes_from_another_site_are_403(
    client: httpx.AsyncClient, headers: dict[str, str], method: str
) -> None:
    response = await client.request(method, "/notes/1", json={"text": "hi"}, headers=headers)

    assert response.status_code == 403
    assert response.json() == CROSS_SITE


async def test_reads_from_another_site_are_not_refused(client: httpx.AsyncClient) -> None:
    # Reading is not a change; the browser's same-origin policy keeps the answer from the page.
    response = await client.get(
        "/notes", headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
    )

    assert response.status_code == 200


async def test_a_cross_site_write_is_refused_before_its_body_is_read(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/notes",
        content=note_of(LIMIT * 2),
        headers={"content-type": "application/json", "sec-fetch-site": "cross-site"},
    )

    assert response.status_code == 403


# --- settings ----------------------------------------------------------------------------------


def test_limits_and_trusted_origins_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, jwt_keys: tuple[str, str]
) -> None:
    monkeypatch.setenv("JWT_PUBLIC_KEY", jwt_keys[1])
    assert ServiceSettings().max_body_bytes == 64 * 1024
    assert ServiceSettings().trusted_origins == ()

    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TRUSTED_ORIGINS", "https://a.example, https://b.example:8443")
    settings = ServiceSettings()

    assert settings.max_body_bytes == 2048
    assert settings.trusted_origins == ("https://a.example", "https://b.example:8443")
