"""The request guards every service has, on auth's writes: another site's page can neither sign
someone up or in (login CSRF) nor sign them out (403); a body over 64 KiB is 413."""

import httpx
import pytest

CROSS_SITE = {"origin": "https://evil.example", "sec-fetch-site": "cross-site"}
REFUSED = {"errors": [{"message": "Cross-site request refused"}]}
CREDENTIALS = {"email": "ada@example.com", "password": "correct horse"}


async def test_another_site_cannot_sign_up_or_sign_in(client: httpx.AsyncClient) -> None:
    signed_up = await client.post("/api/users/signup", json=CREDENTIALS, headers=CROSS_SITE)

    assert signed_up.status_code == 403
    assert signed_up.json() == REFUSED
    assert "set-cookie" not in signed_up.headers
    # Nothing was created: the address is still free.
    assert (await client.post("/api/users/signup", json=CREDENTIALS)).status_code == 201
    client.cookies.clear()
    signed_in = await client.post("/api/users/signin", json=CREDENTIALS, headers=CROSS_SITE)
    assert signed_in.status_code == 403
    assert "set-cookie" not in signed_in.headers


async def test_another_site_cannot_sign_someone_out(client: httpx.AsyncClient) -> None:
    await client.post("/api/users/signup", json=CREDENTIALS)

    response = await client.post("/api/users/signout", json={}, headers=CROSS_SITE)

    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    current = (await client.get("/api/users/currentuser")).json()["currentUser"]
    assert current["email"] == "ada@example.com"


@pytest.mark.parametrize("path", ["/api/users/signup", "/api/users/signin"])
async def test_a_body_over_64_kib_is_413(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={**CREDENTIALS, "password": "x" * (64 * 1024)})

    assert response.status_code == 413
    assert response.json() == {
        "errors": [{"message": "Request body is too large (at most 64 KiB)"}]
    }
