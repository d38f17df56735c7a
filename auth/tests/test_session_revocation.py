"""Sessions that can be ended: a short-lived access token every service reads, and a refresh
token only auth holds (hashed), swapped for a new one at each use. Signing out or changing the
password ends sessions at once for auth, and for every other service within the access token's
lifetime (e2e/test_session_revocation.py shows it across services)."""

import httpx
import jwt
import pytest
from common.auth import SESSION_COOKIE
from fastapi import FastAPI
from gittix_testing import http_client, wait_until

CREDENTIALS = {"email": "ada@example.com", "password": "pw123456"}
REFRESH = "refresh"


def refresh_header(token: str) -> dict[str, str]:
    """The cookie a device holding only this refresh token sends."""
    return {"cookie": f"{REFRESH}={token}"}


async def refresh_with(app: FastAPI, token: str) -> httpx.Response:
    async with http_client(app) as device:
        return await device.post("/api/users/refresh", headers=refresh_header(token))


async def test_the_access_token_lasts_a_minute_and_the_refresh_cookie_stays_with_auth(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/users/signup", json=CREDENTIALS)

    access = jwt.decode(response.cookies[SESSION_COOKIE], options={"verify_signature": False})
    assert access["exp"] - access["iat"] == 60
    cookies = response.headers.get_list("set-cookie")
    refresh = next(cookie for cookie in cookies if cookie.startswith(f"{REFRESH}="))
    assert "Path=/api/users" in refresh and "HttpOnly" in refresh and "Secure" in refresh


async def test_refresh_swaps_the_refresh_token_and_gives_a_new_access_token(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    signed_up = await client.post("/api/users/signup", json=CREDENTIALS)
    first = client.cookies[REFRESH]
    client.cookies.delete(SESSION_COOKIE)  # the access token has run out

    refreshed = await client.post("/api/users/refresh")

    assert refreshed.status_code == 200
    assert refreshed.json() == signed_up.json()
    assert client.cookies[REFRESH] != first
    current = (await client.get("/api/users/currentuser")).json()["currentUser"]
    assert current["email"] == "ada@example.com"
    # Used up: the first token is worth nothing now.
    assert (await refresh_with(app, first)).status_code == 401


async def test_a_reused_refresh_token_ends_the_session_for_both_holders(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.post("/api/users/signup", json=CREDENTIALS)
    stolen = client.cookies[REFRESH]
    # The thief refreshes first; the owner's browser still holds the stolen (now used) token.
    thief = await refresh_with(app, stolen)
    thiefs_token = thief.cookies[REFRESH]

    owner = await client.post("/api/users/refresh")

    assert thief.status_code == 200
    assert owner.status_code == 401
    assert owner.json() == {"errors": [{"message": "Not authorized"}]}
    # The reuse ended the session: the thief's fresh token is refused too.
    assert (await refresh_with(app, thiefs_token)).status_code == 401


async def test_no_or_a_malformed_refresh_token_is_401(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    assert (await client.post("/api/users/refresh")).status_code == 401
    for token in ("garbage", ".", "abc.", ".abc", "unknown-session.secret"):
        assert (await refresh_with(app, token)).status_code == 401


async def test_signing_out_ends_the_session_in_auth_at_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await client.post("/api/users/signup", json=CREDENTIALS)
    token = client.cookies[REFRESH]

    signed_out = await client.post("/api/users/signout")

    assert signed_out.status_code == 200
    assert (await refresh_with(app, token)).status_code == 401
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": None}


@pytest.fixture
def short_access_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    # exp is a whole second, so a token lives between N-1 and N seconds: at 1 s a token made
    # late in a second could be over before the next request on a busy machine.
    monkeypatch.setenv("ACCESS_TOKEN_SECONDS", "3")


async def test_a_password_change_keeps_this_device_and_signs_out_the_others(
    short_access_tokens: None, app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.post("/api/users/signup", json=CREDENTIALS)
    async with http_client(app) as other_device:
        assert (await other_device.post("/api/users/signin", json=CREDENTIALS)).status_code == 200
        others_refresh = other_device.cookies[REFRESH]
        others_access = other_device.cookies[SESSION_COOKIE]

        changed = await client.put(
            "/api/users/currentuser/password",
            json={"currentPassword": "pw123456", "newPassword": "new-password"},
        )

        assert changed.status_code == 200
        # This device got a fresh session: its new refresh token works (again and again).
        for _ in range(2):
            client.cookies.delete(SESSION_COOKIE)
            assert (await client.post("/api/users/refresh")).status_code == 200
            current = (await client.get("/api/users/currentuser")).json()["currentUser"]
            assert current["email"] == "ada@example.com"
        # The other device's session is over: no new access token, and the one it has runs out.
        assert (await refresh_with(app, others_refresh)).status_code == 401

        async def other_device_signed_out() -> bool:
            # The token itself, sent as the device would whether or not its cookie expired.
            response = await other_device.get(
                "/api/users/currentuser", headers={"cookie": f"{SESSION_COOKIE}={others_access}"}
            )
            return response.json() == {"currentUser": None}

        await wait_until(
            other_device_signed_out, timeout=10, message="the old access token is still accepted"
        )
        assert (await other_device.post("/api/users/refresh")).status_code == 401
