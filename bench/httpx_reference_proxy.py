"""For comparison only: the entry point written the obvious way (Starlette + one httpx.AsyncClient).

This design is known to top out near 200 req/s; bench_proxy.py measures it
beside the entry point (Caddy) on the same upstream so the choice stays justified by numbers.
"""

import os

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ["BENCH_UPSTREAM"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def create_app() -> Starlette:
    client = httpx.AsyncClient(base_url=UPSTREAM, limits=httpx.Limits(max_connections=256))

    async def forward(request: Request) -> Response:
        upstream = await client.request(
            request.method,
            request.url.path,
            params=request.query_params,
            headers=[(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP],
            content=await request.body(),
        )
        headers = [(k, v) for k, v in upstream.headers.multi_items() if k not in HOP_BY_HOP]
        response = Response(upstream.content, status_code=upstream.status_code)
        response.raw_headers = [
            *response.raw_headers,
            *((k.encode(), v.encode()) for k, v in headers),
        ]
        return response

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST"])])
