"""Run an app's lifespan in a test and talk to it over HTTPS through httpx's ASGI transport."""

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from gittix_testing.waiting import within

# Starting connects to the bus and creates the stream and consumers; stopping is bounded by the
# service's own shutdown budget (10 s), so anything slower is a hang to report, not to wait out.
START_SECONDS = 30.0
STOP_SECONDS = 20.0


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Start the app (database, bus, outbox relay, listeners) and stop it afterwards."""
    async with AsyncExitStack() as stack:
        async with within(START_SECONDS, f"{app.title} did not start"):
            await stack.enter_async_context(app.router.lifespan_context(app))
        try:
            yield app
        finally:
            async with within(STOP_SECONDS, f"{app.title} did not stop"):
                await stack.aclose()


@asynccontextmanager
async def http_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # https so that the Secure session cookie travels as it does in a browser; a crash answers
    # 500 in the error format as it would behind uvicorn (and is logged) instead of raising here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client
