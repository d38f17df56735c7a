"""The HTTPS entry point against a tiny local upstream: what a browser sends arrives, and back."""

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from devserver.certs import ensure_ca, server_certificate
from devserver.proxy import EntryPoint, server_ssl_context
from gittix_testing.processes import free_port

BIG = b"x" * (3 << 20)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
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


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application(client_max_size=16 << 20)
    app.router.add_route("*", "/api/users/cookies", two_cookies)
    app.router.add_route("*", "/api/users/big", big)
    app.router.add_route("*", "/api/users/empty", no_content)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def proxy(tmp_path: Path, upstream: str) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking HTTPS to the entry point, trusting only the development CA."""
    cert, key = server_certificate(tmp_path, ["localhost", "127.0.0.1"], "localhost")
    # auth is up; tickets is routed to a port where nothing listens; orders is not configured.
    entry = EntryPoint(
        {"auth": upstream, "client": upstream, "tickets": f"http://127.0.0.1:{free_port()}"}
    )
    port = free_port()
    await entry.start("127.0.0.1", port, server_ssl_context(cert, key))
    ca_cert, _ = ensure_ca(tmp_path)
    async with httpx.AsyncClient(
        base_url=f"https://localhost:{port}", verify=ssl.create_default_context(cafile=ca_cert)
    ) as client:
        yield client
    await entry.close()


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
        "/api/users/me", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http"}
    )
    sent = [(name.lower(), value) for name, value in response.json()["headers"]]
    assert [v for n, v in sent if n == "x-forwarded-for"] == ["127.0.0.1"]
    assert [v for n, v in sent if n == "x-forwarded-proto"] == ["https"]


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


async def test_large_request_body_arrives_whole(proxy: httpx.AsyncClient) -> None:
    payload = b"y" * (2 << 20)
    response = await proxy.put("/api/users/upload", content=payload)
    assert len(response.json()["body"]) == len(payload)


async def test_no_content_response(proxy: httpx.AsyncClient) -> None:
    response = await proxy.delete("/api/users/empty")
    assert response.status_code == 204
    assert response.content == b""


async def test_paths_outside_the_api_go_to_the_client(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/tickets/new?x=1")
    assert response.json()["path_qs"] == "/tickets/new?x=1"


async def test_service_down_is_502_in_the_error_format(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/api/tickets")
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"errors": [{"message": "The tickets service is unavailable"}]}


async def test_service_not_running_is_502_in_the_error_format(proxy: httpx.AsyncClient) -> None:
    response = await proxy.get("/api/orders/123")
    assert response.status_code == 502
    assert response.json() == {"errors": [{"message": "The orders service is not running"}]}


async def test_expect_100_continue_is_answered_before_the_body(
    proxy: httpx.AsyncClient, tmp_path: Path
) -> None:
    # httpx never sends Expect; curl does for large bodies, so speak HTTP/1.1 by hand.
    url = httpx.URL(str(proxy.base_url))
    context = ssl.create_default_context(cafile=ensure_ca(tmp_path)[0])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", url.port, ssl=context, server_hostname="localhost"
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
    assert head.startswith(b"HTTP/1.1 200")
    echoed = json.loads(payload)
    assert echoed["body"] == body.decode()
    assert "expect" not in {name.lower() for name, _ in echoed["headers"]}


async def test_head_keeps_the_length_of_the_body_it_does_not_send(
    proxy: httpx.AsyncClient,
) -> None:
    full = await proxy.get("/api/users/cookies")
    head = await proxy.head("/api/users/cookies")
    assert head.status_code == 201
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
