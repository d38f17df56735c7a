"""Session verification and the current-user dependencies."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from common.auth import SESSION_COOKIE, CurrentUser, RequiredUser, sign_session, verify_session
from common.errors import install_error_handlers
from fastapi import FastAPI
from gittix_testing import http_client


class FakeSettings:
    def __init__(self, public_key: str) -> None:
        self.jwt_public_key = public_key


@pytest.fixture
async def client(jwt_keys: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = FakeSettings(jwt_keys[1])
    install_error_handlers(app)

    @app.get("/maybe")
    async def maybe(user: CurrentUser) -> dict[str, str | None]:
        return {"id": user.id if user else None}

    @app.get("/must")
    async def must(user: RequiredUser) -> dict[str, str]:
        return {"id": user.id}

    async with http_client(app) as http:
        yield http


async def test_required_user_is_401_without_a_session(client: httpx.AsyncClient) -> None:
    response = await client.get("/must")

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_valid_session_names_the_user(
    client: httpx.AsyncClient, session_cookie: object
) -> None:
    client.cookies.update(session_cookie("abc", "a@example.com"))  # type: ignore[operator]

    assert (await client.get("/must")).json() == {"id": "abc"}
    assert (await client.get("/maybe")).json() == {"id": "abc"}


def test_expired_session_is_not_accepted(jwt_keys: tuple[str, str]) -> None:
    token = sign_session(
        user_id="u", email="a@example.com", private_key=jwt_keys[0], lifetime=timedelta(seconds=-5)
    )

    assert verify_session(token, jwt_keys[1]) is None


async def test_tampered_session_is_treated_as_signed_out(
    client: httpx.AsyncClient, jwt_keys: tuple[str, str]
) -> None:
    token = sign_session(user_id="u", email="a@example.com", private_key=jwt_keys[0])
    header, payload, signature = token.split(".")
    client.cookies.set(SESSION_COOKIE, f"{header}.{payload}x.{signature}")

    assert (await client.get("/maybe")).json() == {"id": None}
    assert (await client.get("/must")).status_code == 401
