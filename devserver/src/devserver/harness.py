"""The whole system for end-to-end tests: `System` exactly as `make up` runs it, on free ports.

e2e/conftest.py turns this into the `system` fixture; tests may import `RunningSystem` for types.
"""

import os
import socket
import ssl
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from devserver.routing import SERVICES
from devserver.system import System, SystemConfig

REFRESH_PATH = "/api/users/refresh"
# The session calls themselves: a 401 from one of them is the answer, not a token that ran out.
SESSION_PATHS = frozenset({REFRESH_PATH, "/api/users/signin", "/api/users/signup"})


class RefreshingSession(httpx.Auth):
    """What the web client does (client/.../js/api.js): the access token lasts a minute, so a
    401 gets one refresh from the refresh cookie and the request is sent once more with the new
    access token. Without a refresh cookie (or a session that ended) the 401 stands.

    `cookies` is the client's own jar: the refresh cookie is scoped to auth's path, so only the
    jar (not the failed request) has it, and the retry needs the cookies the refresh set.
    """

    def __init__(self, cookies: httpx.Cookies) -> None:
        self.cookies = cookies

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401 or request.url.path in SESSION_PATHS:
            return
        refresh = httpx.Request(
            "POST", request.url.copy_with(path=REFRESH_PATH, query=None), json={}
        )
        self.cookies.set_cookie_header(refresh)
        if "cookie" not in refresh.headers:
            return
        refreshed = yield refresh
        if refreshed.status_code != 200:
            return
        self.cookies.extract_cookies(refreshed)
        request.headers.pop("cookie", None)
        self.cookies.set_cookie_header(request)
        yield request


@dataclass
class RunningSystem:
    """A started system. Talk to it over HTTPS like a browser would:

    >>> async with system.client() as http:
    ...     await http.get("/api/users/currentuser")
    """

    system: System
    base_url: str  # https://localhost:<port>, the entry point
    ca_path: Path  # the development CA: verify=ssl.create_default_context(cafile=ca_path)
    nats_url: str  # the system's NATS, for tests that watch or publish events
    data_dir: Path  # keys/, certs/, nats/, logs/<process>.log

    @property
    def url(self) -> str:
        """The entry point's base URL (same as base_url)."""
        return self.base_url

    @property
    def ca_cert(self) -> Path:
        """The development CA's certificate (same as ca_path)."""
        return self.ca_path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """A new HTTPS client (own cookie jar = one browser/user) for the entry point."""
        kwargs.setdefault("timeout", 30.0)
        client = httpx.AsyncClient(base_url=self.base_url, verify=self.ssl_context(), **kwargs)
        if "auth" not in kwargs:
            client.auth = RefreshingSession(client.cookies)
        return client

    def service_url(self, name: str) -> str:
        """A service's own plain-HTTP address, bypassing the entry point."""
        return self.system.service_url(name)

    @property
    def services(self) -> list[str]:
        """The services that are running (those whose app module exists)."""
        return list(self.system.services)

    def restart(self, name: str) -> None:
        """Stop one service gracefully (SIGTERM), start it again, wait until it is ready."""
        self.system.restart_service(name)

    def kill(self, name: str) -> None:
        """Kill one service abruptly (SIGKILL), as a crash would. `start(name)` brings it back."""
        self.system.kill_service(name)

    def stop(self, name: str) -> None:
        """Stop one service gracefully and leave it stopped."""
        self.system.stop_service(name)

    def start(self, name: str) -> None:
        """Start a stopped or killed service again and wait until it answers /readyz."""
        self.system.start_service(name)

    def log(self, name: str) -> str:
        """Everything one process has printed so far (e.g. "orders", "nats", "caddy")."""
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (all held open at once, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def drop_databases(mongo_url: str, prefix: str) -> None:
    """Drop every database whose name starts with `prefix` (one system's, on a shared server)."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
    finally:
        client.close()


@contextmanager
def running_system(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    services: frozenset[str] | None = None,
) -> Iterator[RunningSystem]:
    """Start the system on free ports with its state under data_dir; stop all of it after."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    with (log_dir / "system.log").open("a") as output:
        https, nats, stripe, mongo, *service_ports = free_ports(4 + len(SERVICES))
        # On the MongoDB of this process's MONGO_URL (`MONGO_URL=... make test`, shared by every
        # system the run starts), databases of this system's own, dropped when it stops. A
        # caller passing MONGO_URL in `env` brings a server of its own and reads it by the
        # services' names.
        shared = not (env or {}).get("MONGO_URL")
        mongo_url = os.environ.get("MONGO_URL") if shared else None
        prefix = f"gittix_e2e_{uuid.uuid4().hex[:12]}_" if mongo_url else ""
        config = SystemConfig(
            data_dir=data_dir,
            https_port=https,
            nats_port=nats,
            stripe_port=stripe,
            mongo_port=mongo,
            service_ports={s.name: port for s, port in zip(SERVICES, service_ports, strict=True)},
            env=dict(env or {}),
            services=services,
            output=output,
            database_prefix=prefix,
        )
        system = System(config)
        system.start()
        try:
            assert system.ca_cert is not None
            yield RunningSystem(
                system=system,
                base_url=system.url,
                ca_path=system.ca_cert,
                nats_url=system.nats_url,
                data_dir=data_dir,
            )
        finally:
            system.stop()
            if mongo_url:
                drop_databases(mongo_url, prefix)
