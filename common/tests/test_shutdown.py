"""Bounded shutdown, piece by piece: requests past the deadline are answered 503, the relay's
last pass publishes what was just written (listeners: test_listener_shutdown.py)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from common.errors import install_error_handlers
from common.events import TicketCreated
from common.messaging import Publisher
from common.outbox import OutboxRelay, outbox_entry
from common.settings import ShutdownSettings
from common.shutdown import SHUTTING_DOWN_MESSAGE, BoundedRequests, ShutdownClock
from fastapi import FastAPI
from gittix_testing import TestBus
from pydantic import ValidationError

RESTARTING = {"errors": [{"message": SHUTTING_DOWN_MESSAGE}]}


def app_with(clock: ShutdownClock, release: asyncio.Event, started: asyncio.Event) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BoundedRequests, clock=clock)

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        started.set()
        await release.wait()
        return {"status": "done"}

    @app.get("/fast")
    async def fast() -> dict[str, str]:
        return {"status": "done"}

    return app


@dataclass
class SlowRequest:
    """A GET /slow in flight on an app with BoundedRequests; it answers once `release` is set."""

    clock: ShutdownClock
    client: httpx.AsyncClient
    answer: asyncio.Task[httpx.Response]
    release: asyncio.Event


@asynccontextmanager
async def slow_request_in_flight(*, request_seconds: float) -> AsyncIterator[SlowRequest]:
    clock = ShutdownClock(budget_seconds=5, request_seconds=request_seconds)
    release, started = asyncio.Event(), asyncio.Event()
    transport = httpx.ASGITransport(app=app_with(clock, release, started))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = asyncio.create_task(client.get("/slow"))
        try:
            await asyncio.wait_for(started.wait(), 5)
            yield SlowRequest(clock, client, answer, release)
        finally:
            # A test that failed early must not leave the request running after it.
            answer.cancel()
            await asyncio.gather(answer, return_exceptions=True)


async def test_a_request_still_running_at_the_request_deadline_is_answered_503() -> None:
    async with slow_request_in_flight(request_seconds=0.2) as slow:
        slow.clock.begin()
        async with asyncio.timeout(5):
            answer = await slow.answer

    assert (answer.status_code, answer.json()) == (503, RESTARTING)
    assert answer.headers["connection"] == "close"


async def test_requests_finishing_within_the_deadline_are_answered_normally() -> None:
    async with slow_request_in_flight(request_seconds=2) as slow:
        slow.clock.begin()
        fast = await slow.client.get("/fast")
        slow.release.set()
        async with asyncio.timeout(5):
            answer = await slow.answer

    assert (fast.status_code, answer.status_code) == (200, 200)
    assert answer.json() == {"status": "done"}


async def test_without_shutdown_a_request_takes_as_long_as_it_takes() -> None:
    async with slow_request_in_flight(request_seconds=0.01) as slow:
        done, _ = await asyncio.wait([slow.answer], timeout=0.2)
        assert not done  # no deadline until shutdown begins
        slow.release.set()
        async with asyncio.timeout(5):
            answer = await slow.answer

    assert answer.status_code == 200


def test_the_request_deadline_must_leave_time_for_the_rest() -> None:
    assert ShutdownSettings().shutdown_seconds < 10
    with pytest.raises(ValidationError, match="SHUTDOWN_REQUEST_SECONDS"):
        ShutdownSettings(shutdown_seconds=4, shutdown_request_seconds=3)


async def test_stopping_the_relay_publishes_what_was_just_written(
    bus: TestBus, database: Any
) -> None:
    relay = OutboxRelay([database.tickets], Publisher(bus.js), poll_seconds=3600)
    relay.start()
    # Written without waking the relay, as if in the last instant before the signal.
    event = TicketCreated(id="t1", version=0, title="Gig", price=Decimal("5"), user_id="u1")
    await database.tickets.insert_one({"_id": "t1", "outbox": [outbox_entry(event)]})

    async with asyncio.timeout(5):
        await relay.stop(grace=5)

    await bus.wait_for(TicketCreated, id="t1", timeout=5)
    assert (await database.tickets.find_one({"_id": "t1"}))["outbox"] == []
