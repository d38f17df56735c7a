"""Sessions end everywhere: after signing out, or after a password change on another device,
the old access token is refused by tickets, orders and payments within the access token's
lifetime (ACCESS_TOKEN_SECONDS, 60 s in production, 2 s here so the test does not wait a minute),
while the device that changed the password stays signed in."""

import time

import httpx
from common.auth import SESSION_COOKIE
from devserver.harness import RunningSystem
from gittix_testing.waiting import wait_until

SYSTEM_SERVICES = {"auth", "tickets", "orders", "payments"}
ACCESS_SECONDS = 2
SYSTEM_ENV = {"ACCESS_TOKEN_SECONDS": str(ACCESS_SECONDS)}
PASSWORD = "correct horse battery"
# A request each service answers only for a signed-in person; anyone else gets 401.
GUARDED = {
    "tickets": ("POST", "/api/tickets", {"title": "Concert", "price": 20}),
    "orders": ("GET", "/api/orders", None),
    "payments": ("POST", "/api/payments", {"orderId": "64b0000000000000000000bb", "token": "x"}),
}


async def status_with(system: RunningSystem, service: str, access_token: str) -> int:
    """What `service` answers a request carrying this access token and nothing else."""
    method, path, body = GUARDED[service]
    async with system.client() as http:
        response = await http.request(
            method, path, json=body, headers={"cookie": f"{SESSION_COOKIE}={access_token}"}
        )
    return response.status_code


async def refused_everywhere_within_the_window(system: RunningSystem, access_token: str) -> None:
    started = time.monotonic()
    for service in GUARDED:

        async def refused(service: str = service) -> bool:
            return await status_with(system, service, access_token) == 401

        await wait_until(refused, timeout=30, message=f"{service} still accepts the old token")
    # Well inside the minute production allows (the lifetime here is 2 s; the rest is slack
    # for a busy machine).
    assert time.monotonic() - started < 60


async def sign_up(http: httpx.AsyncClient, email: str) -> str:
    response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return str(response.cookies[SESSION_COOKIE])


async def test_after_sign_out_the_old_token_is_refused_by_every_service(
    system: RunningSystem,
) -> None:
    async with system.client() as browser:
        token = await sign_up(browser, "leaving@example.com")
        # Accepted while the session lasts (orders: the person's orders, none yet).
        assert await status_with(system, "orders", token) == 200

        signed_out = await browser.post("/api/users/signout", json={})
        assert signed_out.status_code == 200

        await refused_everywhere_within_the_window(system, token)
        # And it cannot be renewed: the session is over in auth.
        assert (await browser.post("/api/users/refresh", json={})).status_code == 401


async def test_a_password_change_signs_out_the_other_devices_and_keeps_this_one(
    system: RunningSystem,
) -> None:
    async with system.client() as laptop, system.client() as phone:
        await sign_up(laptop, "moving@example.com")
        signed_in = await phone.post(
            "/api/users/signin", json={"email": "moving@example.com", "password": PASSWORD}
        )
        phones_token = str(signed_in.cookies[SESSION_COOKIE])

        changed = await laptop.put(
            "/api/users/currentuser/password",
            json={"currentPassword": PASSWORD, "newPassword": "a brand new password"},
        )
        assert changed.status_code == 200

        await refused_everywhere_within_the_window(system, phones_token)
        assert (await phone.post("/api/users/refresh", json={})).status_code == 401
        # The laptop keeps going: a new access token from its new session, accepted everywhere.
        assert (await laptop.post("/api/users/refresh", json={})).status_code == 200
        laptops_token = str(laptop.cookies[SESSION_COOKIE])
        assert await status_with(system, "orders", laptops_token) == 200
        assert await status_with(system, "tickets", laptops_token) == 201


async def test_a_client_keeps_its_session_past_the_access_tokens_lifetime(
    system: RunningSystem,
) -> None:
    # As the web client does (and RunningSystem.client, like it): a 401 gets one refresh.
    async with system.client() as browser:
        first = await sign_up(browser, "staying@example.com")

        async def expired() -> bool:
            return await status_with(system, "orders", first) == 401

        await wait_until(expired, timeout=30, message="the access token never ran out")

        orders = await browser.get("/api/orders")

        assert orders.status_code == 200
        assert browser.cookies[SESSION_COOKIE] != first
