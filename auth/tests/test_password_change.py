"""Changing a password: the old one stops working, UserUpdated carries the new version."""

import httpx
from common.events import UserUpdated
from gittix_testing import TestBus


async def test_password_change_publishes_user_updated_and_swaps_passwords(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    signup = await client.post(
        "/api/users/signup", json={"email": "ada@example.com", "password": "old-password"}
    )
    user_id = signup.json()["id"]

    response = await client.put(
        "/api/users/currentuser/password",
        json={"currentPassword": "old-password", "newPassword": "new-password"},
    )

    assert response.status_code == 200
    assert response.json() == {"id": user_id, "email": "ada@example.com"}
    event = await bus.wait_for(UserUpdated, id=user_id)
    assert event.version == 1
    client.cookies.clear()
    old = await client.post(
        "/api/users/signin", json={"email": "ada@example.com", "password": "old-password"}
    )
    new = await client.post(
        "/api/users/signin", json={"email": "ada@example.com", "password": "new-password"}
    )
    assert (old.status_code, new.status_code) == (400, 200)


async def test_password_change_needs_a_session(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/users/currentuser/password",
        json={"currentPassword": "old-password", "newPassword": "new-password"},
    )

    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_wrong_current_password_or_short_new_password_is_400(
    client: httpx.AsyncClient, bus: TestBus
) -> None:
    await client.post(
        "/api/users/signup", json={"email": "ada@example.com", "password": "old-password"}
    )

    wrong = await client.put(
        "/api/users/currentuser/password",
        json={"currentPassword": "not-it-at-all", "newPassword": "new-password"},
    )
    short = await client.put(
        "/api/users/currentuser/password",
        json={"currentPassword": "old-password", "newPassword": "short"},
    )

    assert wrong.status_code == short.status_code == 400
    assert wrong.json() == {
        "errors": [{"message": "Current password is incorrect", "field": "currentPassword"}]
    }
    assert short.json()["errors"][0]["field"] == "newPassword"
    assert bus.published(UserUpdated) == []
