"""Session verification and the current-user dependencies."""

import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from common.auth import (
    SESSION_COOKIE,
    CurrentUser,
    RequiredUser,
    sign_session,
    verified_sessions,
    verify_session,
)
from common.errors import install_error_handlers
from fastapi import FastAPI
from gittix_testing import http_client
from gittix_testing.keys import signing_key_pair
from gittix_testing.waiting import wait_until


@pytest.fixture(autouse=True)
def no_remembered_sessions() -> Iterator[None]:
    verified_sessions.clear()
    yield
    verified_sessions.clear()


def with_signature_character_changed(token: str, at: int) -> str:
    header, payload, signature = token.split(".")
    # Not the last character: its low bits are padding a lenient base64 decoder ignores.
    replacement = "A" if signature[at] != "A" else "B"
    return f"{header}.{payload}.{signature[:at]}{replacement}{signature[at + 1 :]}"


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


async def test_remembered_session_is_refused_once_expired(jwt_keys: tuple[str, str]) -> None:
    private_key, public_key = jwt_keys
    token = sign_session(
        user_id="u", email="a@example.com", private_key=private_key, lifetime=timedelta(seconds=2)
    )
    user = verify_session(token, public_key)
    assert user is not None
    assert verify_session(token, public_key) == user
    assert (token, public_key) in verified_sessions

    # As PyJWT, without leeway: valid while now < exp, refused from exp on.
    await wait_until(
        lambda: time.time() >= user.exp, timeout=10, message="the session's exp never came"
    )

    assert verify_session(token, public_key) is None
    assert (token, public_key) not in verified_sessions


def test_session_verified_under_one_key_is_refused_under_another(
    jwt_keys: tuple[str, str],
) -> None:
    private_key, public_key = jwt_keys
    _, other_public_key = signing_key_pair()
    token = sign_session(user_id="u", email="a@example.com", private_key=private_key)
    assert verify_session(token, public_key) is not None

    assert verify_session(token, other_public_key) is None
    assert verify_session(token, public_key) is not None


async def test_changed_signature_is_refused_after_the_original_was_accepted(
    client: httpx.AsyncClient, jwt_keys: tuple[str, str]
) -> None:
    token = sign_session(user_id="u", email="a@example.com", private_key=jwt_keys[0])
    client.cookies.set(SESSION_COOKIE, token)
    assert (await client.get("/must")).json() == {"id": "u"}

    client.cookies.set(SESSION_COOKIE, with_signature_character_changed(token, at=20))

    assert (await client.get("/maybe")).json() == {"id": None}
    assert (await client.get("/must")).status_code == 401


def test_remembered_sessions_stay_bounded_and_bad_tokens_evict_none(
    jwt_keys: tuple[str, str],
) -> None:
    private_key, public_key = jwt_keys
    capacity = verified_sessions.capacity
    tokens = [
        sign_session(user_id=f"u{n}", email=f"{n}@example.com", private_key=private_key)
        for n in range(capacity + 1)
    ]
    for token in tokens[:capacity]:
        assert verify_session(token, public_key) is not None
    assert verify_session(tokens[0], public_key) is not None  # the oldest, used again

    assert verify_session(tokens[capacity], public_key) is not None

    assert len(verified_sessions) == capacity
    assert (tokens[0], public_key) in verified_sessions
    assert (tokens[1], public_key) not in verified_sessions  # the least recently used
    assert verify_session(tokens[1], public_key) is not None  # checked in full again

    remembered = [token for token in tokens if (token, public_key) in verified_sessions]
    for n in range(200):
        forged = with_signature_character_changed(tokens[n], at=30)
        assert verify_session(forged, public_key) is None
        assert verify_session(f"not.a.token{n}", public_key) is None
    assert len(verified_sessions) == capacity
    assert all((token, public_key) in verified_sessions for token in remembered)
