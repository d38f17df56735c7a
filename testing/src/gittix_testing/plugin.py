"""The pytest plugin every service's tests use (registered through the pytest11 entry point)."""

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from common.auth import SESSION_COOKIE, sign_session
from common.deadletter import DEAD_LETTER_STREAM
from common.messaging import STREAM_NAME
from fastapi import FastAPI

from gittix_testing.app import http_client, running
from gittix_testing.bus import EventRecorder, TestBus, recreate_streams, subscribe_recorder
from gittix_testing.databases import own_database
from gittix_testing.keys import signing_key_pair
from gittix_testing.processes import ManagedProcess, start_localstripe, start_nats_server
from gittix_testing.query_audit import QueryLog, RecordingDatabase, describe
from gittix_testing.waiting import wait_until, within

# Where each asyncio task waits, printed just before pytest-timeout ends a stuck test.
pytest_plugins = ["gittix_testing.hang_report"]

BUS_CLOSE_SECONDS = 10.0
MONGO_URL_KEY = pytest.StashKey[str | None]()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[ManagedProcess]:
    """A real nats-server with JetStream on a free port, for the whole test session."""
    with tempfile.TemporaryDirectory(prefix="gittix-nats-") as store:
        server = start_nats_server(Path(store))
        yield server
        server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: ManagedProcess) -> str:
    return f"nats://127.0.0.1:{nats_server.port}"


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """A localstripe server; yields the API base URL to give the Stripe SDK."""
    server = start_localstripe()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture(scope="session")
def jwt_keys() -> tuple[str, str]:
    """A test Ed25519 key pair (private PEM, public PEM)."""
    return signing_key_pair()


@pytest.fixture
def service_env(
    monkeypatch: pytest.MonkeyPatch, nats_url: str, jwt_keys: tuple[str, str]
) -> dict[str, str]:
    """The environment a service reads its settings from, pointing at the test bus."""
    env = {
        "NATS_URL": nats_url,
        "JWT_PUBLIC_KEY": jwt_keys[1],
        "JWT_PRIVATE_KEY": jwt_keys[0],
    }
    monkeypatch.delenv("MONGO_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def pytest_configure(config: pytest.Config) -> None:
    # Read once, before any test's service_env unsets it for the services it starts.
    config.stash[MONGO_URL_KEY] = os.environ.get("MONGO_URL") or None


@pytest.fixture(scope="session")
def mongo_url(pytestconfig: pytest.Config) -> str | None:
    """The MongoDB the suite runs on (MONGO_URL when the run started), or None: embedded store."""
    return pytestconfig.stash.get(MONGO_URL_KEY, None)


@pytest.fixture
async def database(mongo_url: str | None) -> AsyncIterator[Any]:
    """A clean database for this test: its own on the MongoDB at MONGO_URL (dropped afterwards),
    or mongomock-motor's in-memory stand-in. The service under test creates its indexes in it
    on start, as it does in production. Every query the service makes through it is checked
    against those indexes when the test ends (gittix_testing.query_audit)."""
    async with own_database(mongo_url) as db:
        recording = RecordingDatabase(db, QueryLog())
        yield recording
        missing = await recording.unindexed_queries()
        if missing:
            pytest.fail(
                "queries no declared index answers (a collection scan on MongoDB); add an "
                f"index in the service's create_indexes or change the query:\n{describe(missing)}",
                pytrace=False,
            )


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[TestBus]:
    """The real bus with a freshly created stream (no events or consumers from other tests)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await recreate_streams(js, (STREAM_NAME, DEAD_LETTER_STREAM))
    recorder = EventRecorder()
    subscription = await subscribe_recorder(js, recorder)
    yield TestBus(url=nats_url, nc=nc, js=js, recorder=recorder)
    async with within(BUS_CLOSE_SECONDS, "the test's bus connection did not close"):
        await subscription.unsubscribe()
        await nc.close()


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """eventually(check, timeout=10.0): wait until a check holds, for state no event announces
    (such as an emptied outbox)."""

    async def wait(
        check: Callable[[], Awaitable[bool]], *, timeout: float = 10.0, message: str = ""
    ) -> None:
        await wait_until(
            check, timeout=timeout, message=message or f"{check.__qualname__} never held"
        )

    return wait


@pytest.fixture
def session_cookie(jwt_keys: tuple[str, str]) -> Callable[..., dict[str, str]]:
    """Cookies for a signed-in user: session_cookie(user_id, email)."""

    def make(
        user_id: str = "5f1f1f1f1f1f1f1f1f1f1f1f", email: str = "buyer@example.com"
    ) -> dict[str, str]:
        return {SESSION_COOKIE: sign_session(user_id=user_id, email=email, private_key=jwt_keys[0])}

    return make


@pytest.fixture
async def app(
    app_factory: Callable[..., FastAPI], service_env: dict[str, str], database: Any, bus: TestBus
) -> AsyncIterator[FastAPI]:
    """The service under test, running (bus, outbox relay, listeners) on a clean database.

    A service's conftest provides `app_factory` (its create_app).
    """
    async with running(app_factory(database=database)) as started:
        yield started


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTPS client for the running app."""
    async with http_client(app) as http:
        yield http
