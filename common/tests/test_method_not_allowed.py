"""A method a path does not answer to is 405 in the common format, with an Allow header naming
every method the path does answer to (not just those of the first route matching it)."""

from collections.abc import AsyncIterator

import httpx
import pytest
from common.errors import install_error_handlers
from fastapi import FastAPI
from gittix_testing import http_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)

    # One resource, two routes: FastAPI registers each method as a route of its own.
    @app.get("/things")
    async def listing() -> list[str]:
        return []

    @app.post("/things")
    async def create() -> dict[str, str]:
        return {}

    @app.put("/things/{thing_id}")
    async def edit(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    async with http_client(app) as http:
        yield http


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/things", "GET, POST"),
        ("OPTIONS", "/things", "GET, POST"),
        ("GET", "/things/42", "PUT"),
    ],
)
async def test_405_names_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"errors": [{"message": "Method not allowed"}]}
