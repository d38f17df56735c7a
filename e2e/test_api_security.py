"""The HTTP APIs under attack, as `make up` runs them: fuzzed from their own OpenAPI documents,
called by the wrong people, and handed forged sessions.

- Fuzzing: schemathesis generates requests from each service's OpenAPI (valid and invalid ones,
  a bounded number per operation, a fixed seed) and checks every answer: never a 5xx, always
  the documented status, content type, headers and body schema, invalid input refused with a
  4xx, valid input accepted.
- The authorization matrix: every route x anonymous / another signed-in user / the owner, with
  the status each must get (the table below), on fresh data for every cell.
- Token attacks: `alg: none`, HS256 signed with the public key, expired, issued in the future,
  a tampered payload, another key: each refused by every service that checks sessions.
"""

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import pytest
from common.auth import SESSION_COOKIE, sign_session
from common.messaging import STREAM_NAME
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from devserver.harness import RunningSystem
from gittix_testing.waiting import wait_until
from nats.js.errors import NotFoundError

PASSWORD = "correct horse battery"
# Every person here signs up from 127.0.0.1: the shared system lifts auth's per-address sign-up
# and sign-in budgets (e2e/conftest.py), so the matrix's forty-odd people are not refused as a
# flood.
# Events take this long at most to reach another service on a loaded machine.
EVENTUAL = 30.0

# ------------------------------------------------------------------------------------ fuzzing

# Bounded, so the whole run stays near half a minute on two busy cores (the figures are in the
# report of the change that added this, not asserted); the seed makes a failure reproducible.
FUZZ_EXAMPLES = 10
FUZZ_SEED = 20261128
API_SERVICES = ("auth", "tickets", "orders", "payments")
# Every check schemathesis has (all are on unless the configuration turns one off): no 5xx,
# documented status codes, content types, headers and response schemas, invalid data refused
# (4xx), schema-valid data accepted (2xx) ...
FUZZ_CONFIG = """
# ... except where a schema-valid request is refused by the state it meets, as the API says:
# sign-in with credentials nobody has is 400 "Invalid credentials", sign-up with an email
# already taken (by an earlier generated request) is 400 "Email in use".
[[operations]]
include-path-regex = "^/api/users/sign(in|up)$"
checks.positive_data_acceptance.enabled = false
# Stripe's webhooks are accepted only with a valid Stripe-Signature, which no generated request
# can have (400 "Invalid Stripe signature" is the answer meant for all of them).
[[operations]]
include-path-regex = "^/api/payments/webhooks$"
checks.positive_data_acceptance.enabled = false
"""


def fuzz(service: str, base_url: str, cookie: str, config: Path) -> subprocess.Popen[str]:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    return subprocess.Popen(
        [
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            f"{base_url}/openapi.json",
            "--max-examples",
            str(FUZZ_EXAMPLES),
            "--seed",
            str(FUZZ_SEED),
            "--phases",
            "examples,coverage,fuzzing",
            "--header",
            f"Cookie: {SESSION_COOKIE}={cookie}",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_fuzzing_every_api_finds_no_server_error_and_no_answer_off_its_schema(
    system: RunningSystem, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    # Signed in, so generated requests get past the session check to the handlers.
    cookie = session_for(system, user_id="64b0000000000000000000ff", email="fuzz@example.com")
    started = time.monotonic()
    runs = {name: fuzz(name, system.service_url(name), cookie, config) for name in API_SERVICES}
    problems = []
    for name, run in runs.items():
        output, _ = run.communicate(timeout=300)
        document = httpx.get(f"{system.service_url(name)}/openapi.json").json()
        operations = sum(len(methods) for methods in document["paths"].values())
        tested = re.search(r"^\s*Tested: (\d+)", output, re.M)
        if run.returncode != 0:
            problems.append(f"--- {name}: schemathesis exit {run.returncode}\n{output}")
        elif tested is None or int(tested.group(1)) != operations:
            problems.append(f"--- {name}: not all {operations} operations were tested\n{output}")
    print(f"fuzzed {', '.join(runs)} in {time.monotonic() - started:.1f} s")
    assert problems == [], "\n".join(problems)


# ------------------------------------------------------------------------ sessions and people


def session_for(system: RunningSystem, *, user_id: str, email: str, **claims: Any) -> str:
    """A session signed with the system's real key, as auth would sign it."""
    private_pem = (system.data_dir / "keys" / "jwt-private.pem").read_text()
    if not claims:
        return sign_session(user_id=user_id, email=email, private_key=private_pem)
    return jwt.encode({"id": user_id, "email": email, **claims}, private_pem, algorithm="EdDSA")


@dataclass
class Person:
    """A browser of its own (cookie jar); signed up unless anonymous."""

    http: httpx.AsyncClient
    id: str | None = None
    email: str | None = None


@pytest.fixture
async def people(system: RunningSystem) -> AsyncIterator[Callable[..., Awaitable[Person]]]:
    opened: list[httpx.AsyncClient] = []

    async def person(*, signed_up: bool = True) -> Person:
        http = system.client()
        opened.append(http)
        if not signed_up:
            return Person(http)
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return Person(http, response.json()["id"], email)

    yield person
    for http in opened:
        await http.aclose()


@pytest.fixture
async def consumers(
    system: RunningSystem,
) -> AsyncIterator[Callable[[str, str, str], Awaitable[None]]]:
    """wait(durable, subject, id): until the event on `subject` about `id` is in the stream and
    the service's consumer `durable` has handled it (and everything before it)."""
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()

    async def handled(durable: str, subject: str, about: str) -> None:
        async def published() -> int | None:
            try:
                message = await js.get_last_msg(STREAM_NAME, subject)
            except NotFoundError:
                return None
            # People act one at a time here, so the latest event on the subject is ours once
            # it is there.
            return message.seq if json.loads(message.data or b"{}")["data"]["id"] == about else None

        sequence = await wait_until(
            published, timeout=EVENTUAL, message=f"no {subject} about {about}"
        )

        async def done() -> bool:
            info = await js.consumer_info(STREAM_NAME, durable)
            return info.ack_floor.stream_seq >= sequence

        await wait_until(done, timeout=EVENTUAL, message=f"{durable} did not handle #{sequence}")

    yield handled
    await nc.close()


# ---------------------------------------------------------------------- authorization matrix


@dataclass(frozen=True)
class Route:
    """One route and the status each kind of caller gets. The owner is whoever the resource in
    the path belongs to (the ticket's seller, the order's buyer, the account itself); for
    POST /api/orders it is the ticket's seller, who may not buy their own ticket."""

    method: str
    path: str
    anonymous: int
    other: int
    owner: int
    body: dict[str, Any] | None = None


# {ticket} and {order} are fresh for every cell: a ticket of the seller, reserved by the buyer.
# Account routes act on the caller's own account, so "other" (signed in as someone else) gets
# what the owner gets: no route names another person's account.
MATRIX: tuple[Route, ...] = (
    #     method    path                                anonymous other owner
    Route("POST", "/api/users/signup", 201, 201, 201,
          {"email": "{new_email}", "password": PASSWORD}),
    Route("POST", "/api/users/signin", 200, 200, 200,
          {"email": "{seller_email}", "password": PASSWORD}),
    Route("GET", "/api/users/currentuser", 200, 200, 200),
    Route("PUT", "/api/users/currentuser/password", 401, 200, 200,
          {"currentPassword": PASSWORD, "newPassword": "another long password"}),
    Route("POST", "/api/users/refresh", 401, 200, 200),
    Route("POST", "/api/users/signout", 200, 200, 200),
    Route("GET", "/api/tickets", 200, 200, 200),
    Route("POST", "/api/tickets", 401, 201, 201, {"title": "Matrix", "price": 12.5}),
    Route("GET", "/api/tickets/mine", 401, 200, 200),
    Route("GET", "/api/tickets/{ticket}", 200, 200, 200),
    Route("PUT", "/api/tickets/{ticket}", 401, 403, 200, {"title": "Mine now", "price": 1.5}),
    Route("GET", "/api/orders", 401, 200, 200),
    Route("POST", "/api/orders", 401, 201, 400, {"ticketId": "{ticket}"}),
    Route("GET", "/api/orders/{order}", 401, 403, 200),
    Route("DELETE", "/api/orders/{order}", 401, 403, 204),
    Route("POST", "/api/payments", 401, 403, 201, {"orderId": "{order}", "token": "pm_card_visa"}),
    # Only Stripe (a valid Stripe-Signature) is heard here: everyone else, signed in or not, 400.
    Route("POST", "/api/payments/webhooks", 400, 400, 400, {"type": "payment_intent.succeeded"}),
)  # fmt: skip


async def _sell(seller: Person) -> dict[str, Any]:
    response = await seller.http.post("/api/tickets", json={"title": "Gig", "price": 20.0})
    assert response.status_code == 201, response.text
    ticket: dict[str, Any] = response.json()
    return ticket


Handled = Callable[[str, str, str], Awaitable[None]]


async def _reserve(
    seller: Person, buyer: Person, ticket: dict[str, Any], handled: Handled
) -> dict[str, Any]:
    # orders learns of tickets, payments of orders and users, by events.
    await handled("orders-ticket-created-v1", "ticketing.ticket.created.v1", ticket["id"])
    response = await buyer.http.post("/api/orders", json={"ticketId": ticket["id"]})
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    await handled("payments-order-created-v1", "ticketing.order.created.v1", order["id"])
    return order


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    return value


@pytest.mark.parametrize("route", MATRIX, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_answers_each_kind_of_caller_as_the_table_says(
    route: Route,
    people: Callable[..., Awaitable[Person]],
    consumers: Handled,
) -> None:
    got: dict[str, int] = {}
    # The same people for the row; a fresh ticket (and order) for each cell. The owner goes
    # last, so whatever the others tried, the owner meets the state they should have left.
    seller, buyer, other = await people(), await people(), await people()
    anonymous = await people(signed_up=False)
    # payments knows users by events: the last one handled means all three are.
    await consumers("payments-user-created-v1", "ticketing.user.created.v1", other.id or "")
    for caller in ("anonymous", "other", "owner"):
        ticket = await _sell(seller)
        needs_order = "{order}" in json.dumps([route.path, route.body])
        if needs_order:
            order = await _reserve(seller, buyer, ticket, consumers)
        else:
            order = {"id": "none"}
            await consumers("orders-ticket-created-v1", "ticketing.ticket.created.v1", ticket["id"])
        names = {
            "ticket": ticket["id"],
            "order": order["id"],
            "seller_email": seller.email or "",
            "new_email": f"{uuid.uuid4().hex[:12]}@example.com",
        }
        # For order routes the owner is the buyer; for ticket routes (and placing an order on
        # the ticket) the seller; account routes act on the caller's own account.
        owner = buyer if needs_order else seller
        who = {"anonymous": anonymous, "other": other, "owner": owner}[caller]
        body = _fill(route.body, names)
        response = await who.http.request(
            route.method, _fill(route.path, names), json=body if body is not None else None
        )
        got[caller] = response.status_code
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["errors"], response.text
    assert got == {"anonymous": route.anonymous, "other": route.other, "owner": route.owner}


def test_the_table_has_a_row_for_every_route(system: RunningSystem) -> None:
    # A route added to a service without a row here fails this, so the matrix stays complete.
    served = set()
    for name in API_SERVICES:
        document = httpx.get(f"{system.service_url(name)}/openapi.json").json()
        for path, methods in document["paths"].items():
            served |= {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path)) for method in methods}
    rows = {(route.method, re.sub(r"\{[^}]+\}", "{}", route.path)) for route in MATRIX}
    assert rows == served


async def test_lists_show_only_the_callers_own(
    people: Callable[..., Awaitable[Person]], consumers: Handled
) -> None:
    seller, buyer, other = await people(), await people(), await people()
    order = await _reserve(seller, buyer, await _sell(seller), consumers)
    assert [o["id"] for o in (await buyer.http.get("/api/orders")).json()] == [order["id"]]
    assert (await other.http.get("/api/orders")).json() == []
    me = (await other.http.get("/api/users/currentuser")).json()["currentUser"]
    assert me["id"] == other.id and me["email"] == other.email


# ------------------------------------------------------------------------------ token attacks


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def forged_tokens(system: RunningSystem, user_id: str, email: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"id": user_id, "email": email, "iat": now, "exp": now + 3600}
    public_pem = (system.data_dir / "keys" / "jwt-public.pem").read_bytes()
    hs256 = _unsigned({"alg": "HS256", "typ": "JWT"}, claims)
    hs256_signature = hmac.new(public_pem, hs256.encode(), hashlib.sha256).digest()
    genuine = session_for(system, user_id=user_id, email=email)
    head, _, signature = genuine.split(".")
    tampered_claims = {**claims, "id": "64b0000000000000000000aa"}
    other_key = Ed25519PrivateKey.generate()
    return {
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, claims) + ".",
        "HS256 signed with the public key": f"{hs256}.{_b64(hs256_signature)}",
        "expired": session_for(system, user_id=user_id, email=email, iat=now - 7200, exp=now - 60),
        "issued in the future": session_for(
            system, user_id=user_id, email=email, iat=now + 3600, exp=now + 7200
        ),
        "tampered payload": f"{head}.{_b64(json.dumps(tampered_claims).encode())}.{signature}",
        "another key": jwt.encode(claims, other_key, algorithm="EdDSA"),
    }


# A route of each service that checks the session, and what a refused session gets there.
SESSION_CHECKS = (
    ("auth", "GET", "/api/users/currentuser", None),
    ("tickets", "POST", "/api/tickets", {"title": "Forged", "price": 10.0}),
    ("orders", "GET", "/api/orders", None),
    ("payments", "POST", "/api/payments", {"orderId": "64b0000000000000000000bb", "token": "x"}),
)


async def _as(
    system: RunningSystem, token: str, method: str, path: str, body: Any
) -> httpx.Response:
    async with system.client(cookies={SESSION_COOKIE: token}) as http:
        return await http.request(method, path, json=body)


@pytest.mark.parametrize("attack", [
    "alg none", "HS256 signed with the public key", "expired", "issued in the future",
    "tampered payload", "another key",
])  # fmt: skip
async def test_a_forged_or_stale_session_is_refused_by_every_service(
    system: RunningSystem, attack: str
) -> None:
    victim = "64b0000000000000000000cc"
    token = forged_tokens(system, victim, "victim@example.com")[attack]
    for service, method, path, body in SESSION_CHECKS:
        response = await _as(system, token, method, path, body)
        if service == "auth":
            assert response.json() == {"currentUser": None}, (attack, response.text)
        else:
            assert response.status_code == 401, (attack, service, response.text)


async def test_a_genuine_session_is_accepted_by_every_service(system: RunningSystem) -> None:
    # The same requests with a session auth would have signed: the refusals above are the
    # tokens', not the requests'.
    user = "64b0000000000000000000dd"
    token = session_for(system, user_id=user, email="genuine@example.com")
    answers = [await _as(system, token, m, p, b) for _, m, p, b in SESSION_CHECKS]
    assert answers[0].json()["currentUser"]["id"] == user
    assert [a.status_code for a in answers[1:]] == [201, 200, 404]
