"""The HTTPS entry point of `make up`: TLS, then each request goes to the service routing.py names.

Built on aiohttp's server and one pooled aiohttp ClientSession (keep-alive connections to every
service) running on uvloop: a shared httpx.AsyncClient tops out near 200 req/s (SPEC "Running
it"); bench/ measures what this one adds per request.

Run alone as `python -m devserver.proxy --port 8443 --cert C --key K --upstream auth=4001 ...`.
"""

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.hdrs import CONTENT_LENGTH
from multidict import CIMultiDict, istr
from yarl import URL

from devserver.routing import route_for

log = logging.getLogger("devserver.proxy")

# Hop-by-hop headers (RFC 9110 7.6.1) describe one connection and are never forwarded; the
# framing headers are recomputed for each side.
HOP_BY_HOP = frozenset(
    istr(name)
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        # Answered here (100 Continue) before the body is read; the service gets the whole body.
        "Expect",
    )
)
# This is the edge: what a client claims about forwarding is dropped and set from the socket.
CLIENT_FORWARDING = frozenset(
    istr(name)
    for name in (
        "Forwarded",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Real-IP",
    )
)
# Bodies up to this size are read whole (one write, a Content-Length); bigger or unsized ones
# are streamed through, so no upload or download has to fit in memory.
BUFFER_LIMIT = 1 << 20
# Below uvicorn's default keep-alive (5 s), so the pool never reuses a connection the service
# is closing at that very moment.
UPSTREAM_KEEPALIVE_SECONDS = 4.0
UPSTREAM_CONNECTIONS = 256


def error_response(status: int, message: str) -> web.Response:
    """An error in the one format every service uses: {"errors": [{"message": ...}]}."""
    return web.Response(
        status=status,
        body=json.dumps({"errors": [{"message": message}]}).encode(),
        content_type="application/json",
    )


def _without(headers: Mapping[str, str], dropped: frozenset[istr]) -> CIMultiDict[str]:
    connection_tokens = {
        istr(token.strip())
        for value in headers.getall("Connection", [])  # type: ignore[attr-defined]
        for token in value.split(",")
        if token.strip()
    }
    kept: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        key = istr(name)
        if key not in dropped and key not in connection_tokens:
            kept.add(name, value)
    return kept


class EntryPoint:
    """Routes each request by path prefix to a service at `upstreams[service]` (a base URL)."""

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        connections: int = UPSTREAM_CONNECTIONS,
        access_log: bool = False,
    ) -> None:
        self.upstreams = {name: base.rstrip("/") for name, base in upstreams.items()}
        self.access_log = access_log
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.ServerRunner | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections,
                    keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS,
                    ssl=False,
                ),
                # A proxy passes bytes through: no decompression, no cookie jar, no redirects,
                # and no default headers the client did not send.
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
            )
        return self._session

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        service = route_for(request.path).service
        if not self.access_log:
            return await self._forward(request, service)
        started = time.perf_counter()
        response = await self._forward(request, service)
        log.info(
            "%s %s -> %s %d %.1fms",
            request.method,
            request.raw_path,
            service,
            response.status,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def _forward(self, request: web.BaseRequest, service: str) -> web.StreamResponse:
        base = self.upstreams.get(service)
        if base is None:
            return error_response(502, f"The {service} service is not running")

        headers = _without(request.headers, HOP_BY_HOP | CLIENT_FORWARDING | {CONTENT_LENGTH})
        peer = request.remote or ""
        headers["X-Forwarded-For"] = peer
        headers["X-Real-IP"] = peer
        headers["X-Forwarded-Proto"] = request.scheme
        headers["X-Forwarded-Host"] = request.host
        body: bytes | aiohttp.StreamReader | None = None
        if request.headers.get("Expect", "").lower() == "100-continue":
            # curl and others wait for this before sending a large body.
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if request.body_exists:
            length = request.content_length
            if length is not None and length <= BUFFER_LIMIT:
                body = await request.read()
            else:
                # Streamed: with a known length it is kept, otherwise it goes out chunked.
                body = request.content
                if length is not None:
                    headers[CONTENT_LENGTH] = str(length)

        session = await self._client()
        try:
            async with session.request(
                request.method,
                URL(base + request.raw_path, encoded=True),
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as upstream:
                return await self._respond(request, upstream)
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientOSError,
            aiohttp.ClientPayloadError,
        ) as error:
            log.warning("%s %s -> %s failed: %s", request.method, request.path, service, error)
            return error_response(502, f"The {service} service is unavailable")
        except TimeoutError:
            log.warning("%s %s -> %s timed out", request.method, request.path, service)
            return error_response(504, f"The {service} service did not answer in time")

    async def _respond(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        # raw_headers keeps every Set-Cookie as its own header line.
        headers: CIMultiDict[str] = CIMultiDict()
        for raw_name, raw_value in upstream.raw_headers:
            headers.add(raw_name.decode("latin-1"), raw_value.decode("latin-1"))
        length = upstream.content_length
        headers = _without(headers, HOP_BY_HOP | {CONTENT_LENGTH})
        if request.method == "HEAD" or upstream.status in (204, 304):
            if length is not None and request.method == "HEAD":
                headers["Content-Length"] = str(length)
            return web.Response(status=upstream.status, reason=upstream.reason, headers=headers)
        if length is not None and length <= BUFFER_LIMIT:
            payload = await upstream.read()
            return web.Response(
                status=upstream.status, reason=upstream.reason, headers=headers, body=payload
            )
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        if length is not None:
            response.content_length = length
        await response.prepare(request)  # type: ignore[arg-type]
        async for chunk in upstream.content.iter_chunked(64 * 1024):
            await response.write(chunk)
        await response.write_eof()
        return response

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        # The low-level server: no router or middlewares to run, and no aiohttp access log.
        server = web.Server(self.handle, access_log=None)  # type: ignore[arg-type]
        self._runner = web.ServerRunner(
            server, access_log=None, handle_signals=False, shutdown_timeout=5.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, backlog=1024)
        await site.start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def serve(
    *,
    host: str,
    port: int,
    upstreams: Mapping[str, str],
    cert: Path | None,
    key: Path | None,
    access_log: bool = True,
) -> None:
    """Run the entry point until SIGINT/SIGTERM."""
    context = server_ssl_context(cert, key) if cert and key else None
    entry = EntryPoint(upstreams, access_log=access_log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await entry.start(host, port, context)
    scheme = "https" if context else "http"
    log.info(
        "listening on %s://%s:%d, routing to %s",
        scheme,
        host,
        port,
        ", ".join(f"{name}={url}" for name, url in sorted(entry.upstreams.items())),
    )
    try:
        await stop.wait()
    finally:
        await entry.close()


def _upstream(value: str) -> tuple[str, str]:
    name, _, target = value.partition("=")
    if not name or not target:
        raise argparse.ArgumentTypeError(f"expected NAME=PORT or NAME=URL, got {value!r}")
    return name, target if "://" in target else f"http://127.0.0.1:{int(target)}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devserver.proxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, help="PEM server certificate (omit for plain HTTP)")
    parser.add_argument("--key", type=Path)
    parser.add_argument(
        "--upstream", type=_upstream, action="append", default=[], metavar="NAME=PORT|URL"
    )
    parser.add_argument("--quiet", action="store_true", help="no line per request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stdout)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop does not exist on Windows
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(
            serve(
                host=args.host,
                port=args.port,
                upstreams=dict(args.upstream),
                cert=args.cert,
                key=args.key,
                access_log=not args.quiet,
            )
        )


if __name__ == "__main__":
    main()
