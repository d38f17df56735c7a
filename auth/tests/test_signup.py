"""Signing up: a user, a session cookie, a UserCreated event; bad input and taken emails refused."""

import asyncio

import httpx
import pytest
from common.events import UserCreated
from gittix_testing import TestBus


async def test_signup_creates_user_sets_cookie_and_publishes(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ada@example.com", "password": "correct horse"}
    )

    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "email": "ada@example.com"}
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    event = await bus.wait_for(UserCreated, id=body["id"])
    assert event.email == "ada@example.com" and event.version == 0


async def test_signup_session_is_the_current_user(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/users/signup", json={"email": "ada@example.com", "password": "pw123456"}
    )

    response = await client.get("/api/users/currentuser")

    user = response.json()["currentUser"]
    assert user["email"] == "ada@example.com"
    assert user["exp"] > user["iat"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "long enough"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"password": "long enough"}, "email"),
        ({"email": 42, "password": "long enough"}, "email"),
    ],
)
async def test_signup_rejects_invalid_input_with_the_field(
    client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/users/signup", json=body)

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [error["field"] for error in errors] == [field]
    assert errors[0]["message"]


async def test_password_of_exactly_8_and_128_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    short = await client.post(
        "/api/users/signup", json={"email": "a@example.com", "password": "x" * 8}
    )
    long = await client.post(
        "/api/users/signup", json={"email": "b@example.com", "password": "x" * 128}
    )

    assert (short.status_code, long.status_code) == (201, 201)


async def test_email_in_use_is_refused_case_insensitively(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    first = await client.post(
        "/api/users/signup", json={"email": "Ada@Example.com", "password": "pw123456"}
    )
    second = await client.post(
        "/api/users/signup", json={"email": "ada@example.COM", "password": "pw123456"}
    )

    assert first.status_code == 201
    assert second.status_code == 400
    assert second.json() == {"errors": [{"message": "Email in use", "field": "email"}]}
    await bus.wait_for(UserCreated)
    assert len(bus.published(UserCreated)) == 1


async def test_concurrent_duplicate_signups_create_one_user(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/users/signup", json={"email": f"{case}@example.com", "password": "pw123456"}
            )
            for case in ["race", "RACE", "Race", "rAcE", "race", "RaCe"]
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 400, 400, 400, 400, 400]
    await bus.wait_for(UserCreated)
    assert len(bus.published(UserCreated)) == 1


async def test_malformed_json_is_a_400_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Request body is not valid JSON"}]}
