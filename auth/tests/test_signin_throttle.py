"""Repeated failed sign-ins for one account are slowed down, but never locked out for good."""

from datetime import timedelta

import httpx
import pytest
from common.types import utc_now

WRONG = {"email": "ada@example.com", "password": "wrong-password"}
RIGHT = {"email": "ada@example.com", "password": "pw123456"}


@pytest.fixture(autouse=True)
def few_free_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNIN_FREE_ATTEMPTS", "3")


async def test_after_the_free_attempts_even_the_right_password_must_wait(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/users/signup", json=RIGHT)
    client.cookies.clear()

    failures = [await client.post("/api/users/signin", json=WRONG) for _ in range(3)]
    held = await client.post("/api/users/signin", json=RIGHT)

    assert [response.status_code for response in failures] == [400, 400, 400]
    assert held.status_code == 429
    assert "try again in" in held.json()["errors"][0]["message"]
    assert int(held.headers["retry-after"]) >= 1


async def test_the_wait_doubles_and_is_capped(client: httpx.AsyncClient, database: object) -> None:
    for _ in range(3):
        await client.post("/api/users/signin", json=WRONG)
    first = int((await client.post("/api/users/signin", json=WRONG)).headers["retry-after"])
    # Let the window pass (move it into the past) and fail once more: the wait doubles.
    throttle = database["signin_throttle"]  # type: ignore[index]
    await throttle.update_one({}, {"$set": {"locked_until": utc_now() - timedelta(seconds=1)}})
    await client.post("/api/users/signin", json=WRONG)
    second = int((await client.post("/api/users/signin", json=WRONG)).headers["retry-after"])

    assert second == 2 * first
    await throttle.update_one({}, {"$set": {"failures": 10_000, "locked_until": None}})
    await client.post("/api/users/signin", json=WRONG)
    capped = int((await client.post("/api/users/signin", json=WRONG)).headers["retry-after"])
    assert capped <= 900


async def test_once_the_window_passes_the_owner_signs_in_and_the_count_resets(
    client: httpx.AsyncClient, database: object
) -> None:
    await client.post("/api/users/signup", json=RIGHT)
    client.cookies.clear()
    for _ in range(4):
        await client.post("/api/users/signin", json=WRONG)
    throttle = database["signin_throttle"]  # type: ignore[index]
    await throttle.update_one({}, {"$set": {"locked_until": utc_now() - timedelta(seconds=1)}})

    response = await client.post("/api/users/signin", json=RIGHT)

    assert response.status_code == 200
    assert await throttle.count_documents({}) == 0


async def test_other_accounts_are_not_slowed_down(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/users/signup", json={"email": "bob@example.com", "password": "pw123456"}
    )
    client.cookies.clear()
    for _ in range(5):
        await client.post("/api/users/signin", json=WRONG)

    response = await client.post(
        "/api/users/signin", json={"email": "bob@example.com", "password": "pw123456"}
    )

    assert response.status_code == 200
