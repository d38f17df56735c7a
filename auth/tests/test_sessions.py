"""Signing in and out, and who the current user is."""

import base64
import hashlib
import hmac
import json

import httpx
import jwt
from common.auth import SESSION_COOKIE, sign_session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict[str, object], secret: bytes) -> str:
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + _b64(json.dumps(claims).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


async def sign_up(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = "pw123456"
) -> str:
    response = await client.post("/api/users/signup", json={"email": email, "password": password})
    assert response.status_code == 201
    client.cookies.clear()
    return str(response.json()["id"])


async def test_signin_with_right_password_starts_a_session(client: httpx.AsyncClient) -> None:
    user_id = await sign_up(client)

    response = await client.post(
        "/api/users/signin", json={"email": "ADA@example.com", "password": "pw123456"}
    )

    assert response.status_code == 200
    assert response.json() == {"id": user_id, "email": "ada@example.com"}
    assert "HttpOnly" in response.headers["set-cookie"]
    current = (await client.get("/api/users/currentuser")).json()["currentUser"]
    assert current["id"] == user_id


async def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)

    wrong_password = await client.post(
        "/api/users/signin", json={"email": "ada@example.com", "password": "nope12345"}
    )
    unknown_email = await client.post(
        "/api/users/signin", json={"email": "bob@example.com", "password": "pw123456"}
    )

    assert wrong_password.status_code == unknown_email.status_code == 400
    assert (
        wrong_password.json()
        == unknown_email.json()
        == {"errors": [{"message": "Invalid credentials"}]}
    )
    assert "set-cookie" not in wrong_password.headers


async def test_signin_requires_valid_email_and_a_password(client: httpx.AsyncClient) -> None:
    bad_email = await client.post(
        "/api/users/signin", json={"email": "nope", "password": "pw123456"}
    )
    no_password = await client.post(
        "/api/users/signin", json={"email": "a@example.com", "password": ""}
    )

    assert bad_email.status_code == no_password.status_code == 400
    assert bad_email.json()["errors"][0]["field"] == "email"
    assert no_password.json()["errors"][0]["field"] == "password"


async def test_signout_clears_the_cookie(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/users/signup", json={"email": "ada@example.com", "password": "pw123456"}
    )

    response = await client.post("/api/users/signout")

    assert response.status_code == 200
    assert response.json() == {}
    assert (
        response.headers["set-cookie"].startswith('session=""')
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": None}


async def test_no_cookie_means_no_current_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/currentuser")

    assert response.status_code == 200
    assert response.json() == {"currentUser": None}


async def test_forged_expired_or_wrong_algorithm_sessions_are_ignored(
    client: httpx.AsyncClient, jwt_keys: tuple[str, str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other_key = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    forged = sign_session(user_id="u", email="x@example.com", private_key=other_key)
    expired = jwt.encode(
        {"id": "u", "email": "x@example.com", "iat": 1, "exp": 2}, jwt_keys[0], algorithm="EdDSA"
    )
    # The classic algorithm-confusion forgery: HS256 "signed" with the public key as the secret.
    symmetric = _hs256(
        {"id": "u", "email": "x@example.com", "iat": 1, "exp": 4102444800}, jwt_keys[1].encode()
    )

    for token in (forged, expired, symmetric, "garbage"):
        client.cookies.set(SESSION_COOKIE, token)
        assert (await client.get("/api/users/currentuser")).json() == {"currentUser": None}


async def test_unknown_route_is_a_404_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/nothing-here")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}
