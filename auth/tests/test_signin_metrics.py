"""auth's /metrics: a throttled sign-in is counted by its reason."""

import httpx
import pytest
from gittix_testing.metrics import metric_samples

WRONG = {"email": "ada@example.com", "password": "wrong-password"}
RIGHT = {"email": "ada@example.com", "password": "pw123456"}


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNIN_FREE_ATTEMPTS", "3")
    # A wait far longer than any test: with the 1 s default, a slow machine (an argon2 hash per
    # attempt) could outlast it before the next attempt and see 400 where 429 is meant.
    monkeypatch.setenv("SIGNIN_FIRST_LOCKOUT_SECONDS", "60")


async def throttles(client: httpx.AsyncClient) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for sample in await metric_samples(client)
        if sample.name == "gittix_sign_in_throttled_total"
    }


async def test_a_sign_in_held_after_failures_counts_one_account_locked_throttle(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/users/signup", json=RIGHT)
    client.cookies.clear()
    before = await throttles(client)

    for _ in range(3):
        assert (await client.post("/api/users/signin", json=WRONG)).status_code == 400
    held = await client.post("/api/users/signin", json=RIGHT)

    assert held.status_code == 429
    after = await throttles(client)
    moved = {k: after.get(k, 0) - before.get(k, 0) for k in after.keys() | before.keys()}
    assert {k: v for k, v in moved.items() if v} == {"account_locked": 1}
