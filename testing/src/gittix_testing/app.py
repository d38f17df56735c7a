"""Run an app's lifespan in a test and talk to it over HTTPS through httpx's ASGI transport."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[FastAPI]:
    """Start the app (database, bus, outbox relay, listeners) and stop it afterwards."""
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def http_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # https so that the Secure session cookie travels as it does in a browser; a crash answers
    # 500 in the error format as it would behind uvicorn (and is logged) instead of raising here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client
