"""The HTTPS entry point (Caddy, configured from routing.py) in front of tiny local services.

What a browser sends arrives at the service the routing table names, and what the service
answers comes back; what the entry point answers itself is in the common error format.
"""

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from devserver.certs import ensure_ca, server_certificate
from devserver.entry_point import (
    BODY_LIMIT_BYTES,
    caddy_args,
    caddy_config,
    caddy_env,
    write_config,
)
from devserver.routing import ROUTES
from gittix_testing import wait_until
from gittix_testing.processes import ManagedProcess, free_port

BIG = b"x" * (3 << 20)
# What every service answers to a body over its limit, word for word.
TOO_LARGE = {"errors": [{"message": "Request body is too large (at most 64 KiB)"}]}
# Each routed service except orders (not running) and tickets (nothing listens on its port).
UP = ("auth", "payments", "client")
SERVICE = web.AppKey("service", str)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "service": request.app[SERVICE],
            "method": request.method,
            "path_qs": request.raw_path,
            "headers": [[name, value] for name, value in request.headers.items()],
            "body": body.decode(),
        }
    )


async def two_cookies(request: web.Request) -> web.Response:
    response = web.json_response({"ok": True}, status=201)
    response.headers.add("Set-Cookie", "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax")
    response.headers.add("Set-Cookie", "theme=dark; Path=/")
    return response


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for start in range(0, len(BIG), 1 << 20):
        await response.write(BIG[start : start + (1 << 20)])
    await response.write_eof()
    return response


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def never(request: web.Request) -> web.Response:
    await asyncio.Event().wait()  # cancelled when the entry point gives up and disconnects
    raise AssertionError("unreachable")


def service_app(name: str) -> web.Application:
    app = web.Application(client_max_size=16 << 20)
    app[SERVICE] = name
    app.router.add_route("*", "/api/users/cookies", two_cookies)
    app.router.add_route("*", "/api/users/big", big)
    app.router.add_route("*", "/api/users/empty", no_content)
    app.router.add_route("*", "/api/users/never", never)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, int | str]]:
    """Echo services for UP on their own ports; tickets points at a port where nothing listens."""
    runners, ports = [], {}
    for name in UP:
        # Cancelled handlers end when the entry point hangs up, so cleanup never waits on one.
        runner = web.AppRunner(service_app(name), access_log=None, handler_cancellation=True)
        await runner.setup()
        ports[name] = free_port()
        await web.TCPSite(runner, "127.0.0.1", ports[name]).start()
        runners.append(runner)
    yield {**ports, "tickets": free_port()}
    for runner in runners:
        await runner.cleanup()


@dataclass
class EntryPoint:
    base_url: str
    ca: Path
    log: Path

    def client(self, base_url: str | None = None) -> httpx.AsyncClient:
        """An HTTPS client that trusts only the development CA."""
        return httpx.AsyncClient(
            base_url=base_url or self.base_url,
            verify=ssl.create_default_context(cafile=self.ca),
            timeout=30,
        )


@contextmanager
def run_caddy(
    tmp_path: Path, upstreams: dict[str, int | str], answer_timeout: float = 120
) -> Iterator[EntryPoint]:
    cert, key = server_certificate(tmp_path, ["localhost", "127.0.0.1"], "localhost")
    port = free_port()
    config = caddy_config(
        port=port,
        upstreams=upstreams,
        cert=cert,
        key=key,
        storage=tmp_path / "caddy" / "data",
        answer_timeout=answer_timeout,
    )
    path = write_config(tmp_path / "caddy" / "caddy.json", config)
    log = tmp_path / "caddy.log"
    with log.open("wb") as output:
        caddy = ManagedProcess(
            "caddy", caddy_args(path), port=port, env=caddy_env(tmp_path / "caddy"), stdout=output
        )
        with caddy:
            yield EntryPoint(f"https://localhost:{port}", ensure_ca(tmp_path)[0], log)


@pytest.fixture
def entry(tmp_path: Path, upstreams: dict[str, int | str]) -> Iterator[EntryPoint]:
    with run_caddy(tmp_path, upstreams) as running:
        yield running


@pytest.fixture
async def proxy(entry: EntryPoint) -> AsyncIterator[httpx.AsyncClient]:
    async with entry.client() as client:
        yield client


async def test_method_path_query_body_and_headers_reach_the_service(
    proxy: httpx.AsyncClient,
) -> None:
    response = await proxy.post(
        "/api/users/signup?next=%2Fhome&a=1&a=2",
        content=b'{"email": "a@b.c"}',
        headers={"Content-Type": "application/json", "Cookie": "session=s1", "X-Custom": "yes"},
    )
    seen = response.json()
    headers = {name.lower(): value for name, value in seen["headers"]}
    assert response.status_code == 200
    assert seen["service"] == "auth"
    assert seen["method"] == "POST"
    assert seen["path_qs"] == "/api/users/signup?next=%2Fhome&a=1&a=2"
    assert json.loads(seen["body"]) == {"email": "a@b.c"}
    assert headers["content-type"] == "application/json"
    assert headers["cookie"] == "session=s1"
    assert headers["x-custom"] == "yes"
    assert headers["x-forwarded-proto"] == "https"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-host"].startswith("localhost:")


async def test_forwarding_headers_from_the_client_are_replaced(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get(
        "/api/users/me",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "evil.example",
        },
    )
    sent = [(name.lower(), value) for name, value in response.json()["headers"]]
    assert [v for n, v in sent if n == "x-forwarded-for"] == ["127.0.0.1"]
    assert [v for n, v in sent if n == "x-forwarded-proto"] == ["https"]
    assert [v for n, v in sent if n == "x-forwarded-host"] != ["evil.example"]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users", "auth"),
        ("/api/users/currentuser", "auth"),
        ("/api/payments", "payments"),
        ("/api/payments/x/y", "payments"),
        ("/", "client"),
        ("/tickets/new", "client"),
        ("/api", "client"),
        ("/api/usersX", "client"),
        ("/api/payments-admin", "client"),
    ],
)
async def test_each_path_reaches_the_service_the_routing_table_names(
    proxy: httpx.AsyncClient, path: str, service: str
) -> None:
    response = await proxy.get(path)
    assert response.status_code == 200
    assert response.json()["service"] == service


def test_every_route_of_the_table_is_configured_longest_prefix_first(tmp_path: Path) -> None:
    config = caddy_config(
        port=1, upstreams={}, cert=None, key=None, storage=tmp_path, access_log=False
    )
    routes = config["apps"]["http"]["servers"]["entry"]["routes"]
    prefixes = [(r["match"][0]["path"][0] if r["match"] else "/") for r in routes]
    assert sorted(prefixes) == sorted(route.prefix for route in ROUTES)
    assert prefixes[-1] == "/"  # the catch-all last, so it shadows nothing


async def test_the_entry_point_is_trusted_by_ip_address_too(entry: EntryPoint) -> None:
    # The banner offers https://127.0.0.1:<port> as well; clients send no SNI for an address.
    port = httpx.URL(entry.base_url).port
    async with entry.client(f"https://127.0.0.1:{port}") as client:
        response = await client.get("/api/users/currentuser")
    assert response.status_code == 200


async def test_a_client_not_trusting_the_dev_ca_is_refused(entry: EntryPoint) -> None:
    async with httpx.AsyncClient(base_url=entry.base_url) as stranger:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stranger.get("/")


async def test_every_set_cookie_comes_back_separately(proxy: httpx.AsyncClient) -> None:
    response = await proxy.post("/api/users/cookies")
    assert response.status_code == 201
    assert response.headers.get_list("set-cookie") == [
        "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax",
        "theme=dark; Path=/",
    ]


async def test_large_streamed_response_arrives_whole(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/api/users/big")
    assert response.status_code == 200
    assert response.content == BIG


async def test_request_body_up_to_the_limit_arrives_whole(proxy: httpx.AsyncClient) -> None:
    payload = b"y" * BODY_LIMIT_BYTES
    response = await proxy.put("/api/users/upload", content=payload)
    assert response.status_code == 200
    assert len(response.json()["body"]) == len(payload)


async def test_request_body_over_64_kib_is_413_in_the_error_format(
    proxy: httpx.AsyncClient,
) -> None:
    response = await proxy.put("/api/users/upload", content=b"y" * (BODY_LIMIT_BYTES + 1))
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == TOO_LARGE


async def test_a_streamed_body_over_the_limit_is_413_too(proxy: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(4):
            yield b"z" * (BODY_LIMIT_BYTES // 2)

    response = await proxy.post("/api/users/upload", content=chunks())
    assert response.status_code == 413
    assert response.json() == TOO_LARGE


async def test_no_content_response(proxy: httpx.AsyncClient) -> None:
    response = await proxy.delete("/api/users/empty")
    assert response.status_code == 204
    assert response.content == b""


async def test_service_down_is_502_in_the_error_format(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/api/tickets")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"errors": [{"message": "The tickets service is unavailable"}]}


async def test_service_not_running_is_502_in_the_error_format(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/api/orders/123")
    assert response.status_code == 502
    assert response.json() == {"errors": [{"message": "The orders service is not running"}]}


async def test_a_service_that_does_not_answer_in_time_is_504_in_the_error_format(
    tmp_path: Path, upstreams: dict[str, int | str]
) -> None:
    with run_caddy(tmp_path, upstreams, answer_timeout=1) as entry:
        async with entry.client() as client:
            response = await client.get("/api/users/never")
        assert response.status_code == 504
        assert response.json() == {
            "errors": [{"message": "The auth service did not answer in time"}]
        }


async def test_expect_100_continue_is_answered_before_the_body(entry: EntryPoint) -> None:
    # httpx never sends Expect; curl does for large bodies, so speak HTTP/1.1 by hand.
    context = ssl.create_default_context(cafile=entry.ca)
    context.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", httpx.URL(entry.base_url).port, ssl=context, server_hostname="localhost"
    )
    body = b'{"big": true}'
    writer.write(
        b"POST /api/users/upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    await writer.drain()
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(body)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")  # one interim answer, then the final one
    echoed = json.loads(payload)
    assert echoed["body"] == body.decode()


async def test_head_keeps_the_length_of_the_body_it_does_not_send(
    proxy: httpx.AsyncClient,
) -> None:
    full = await proxy.get("/api/users/cookies")
    head = await proxy.head("/api/users/cookies")
    assert head.status_code == 201
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))


async def test_each_request_is_logged_with_its_path_and_status(
    entry: EntryPoint, proxy: httpx.AsyncClient
) -> None:
    await proxy.get("/api/users/logged?x=1")
    await proxy.get("/api/orders/1")

    def logged() -> list[str]:
        lines = [line for line in entry.log.read_text().splitlines() if "handled request" in line]
        return lines if len(lines) >= 2 else []

    lines = await wait_until(logged, timeout=10, message="two requests in the access log")
    assert '"uri": "/api/users/logged?x=1"' in lines[0] and '"status": 200' in lines[0]
    assert '"uri": "/api/orders/1"' in lines[1] and '"status": 502' in lines[1]
