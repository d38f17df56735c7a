"""`make up` (`python -m devserver`) checked from outside, as a developer uses it: over HTTPS with
the generated CA, then stopped with SIGTERM, started again, and started on a port already taken.

Tests run in file order: the first instance serves the HTTP checks, then is stopped by SIGTERM;
a second instance then starts on the same data dir.
"""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from devserver.harness import free_ports
from devserver.routing import SERVICES
from gittix_testing.processes import ManagedProcess

BANNER = "GitTix is up"
START_TIMEOUT = 180.0
PASSWORD = "correct horse battery"


class MakeUp:
    """One `python -m devserver` run on free ports, its output collected line by line."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        https, nats, stripe, mongo, *services = free_ports(4 + len(SERVICES))
        self.https_port = https
        self.args = [
            sys.executable,
            "-m",
            "devserver",
            "--https-port",
            str(https),
            "--nats-port",
            str(nats),
            "--stripe-port",
            str(stripe),
            "--mongo-port",
            str(mongo),
            *(
                arg
                for service, port in zip(SERVICES, services, strict=True)
                for arg in ("--service-port", f"{service.name}={port}")
            ),
        ]
        self.lines: list[str] = []
        self.banner_seen = threading.Event()
        self.managed: ManagedProcess | None = None
        self._reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "certs" / "ca.crt"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.managed is not None and self.managed.process is not None
        return self.managed.process

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def launch(self) -> "MakeUp":
        env = {"TICKETING_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"}
        self.managed = ManagedProcess("make-up", self.args, env=env, stdout=subprocess.PIPE)
        self.managed.start()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if BANNER in line:
                self.banner_seen.set()
        self.banner_seen.set()  # the process ended: stop waiting either way

    def start(self) -> "MakeUp":
        self.launch()
        self.banner_seen.wait(START_TIMEOUT)
        assert self.process.poll() is None and BANNER in self.output, self.output[-5000:]
        return self

    def child_pids(self) -> list[int]:
        """The processes `make up` started (its direct children)."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited while we looked
            if int(fields[1]) == self.process.pid:
                children.append(int(stat.parent.name))
        return children

    def wait_exit(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return code

    def stop(self) -> None:
        if self.managed is not None:
            self.managed.stop(timeout=30)


def client(run: MakeUp) -> httpx.Client:
    return httpx.Client(
        base_url=run.base_url, verify=ssl.create_default_context(cafile=run.ca_path), timeout=30
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent has not collected it yet.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("make-up")


@pytest.fixture(scope="module")
def first_run(data_dir: Path) -> Iterator[MakeUp]:
    run = MakeUp(data_dir).start()
    yield run
    run.stop()


@pytest.fixture(scope="module")
def signed_up(first_run: MakeUp) -> dict[str, object]:
    """A user signed up through the entry point: their email, the response, the cookies."""
    email = f"dev-{uuid.uuid4().hex[:8]}@example.com"
    with client(first_run) as browser:
        response = browser.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        current = browser.get("/api/users/currentuser")
    return {"email": email, "response": response, "current": current}


def test_anonymous_currentuser_is_null(first_run: MakeUp) -> None:
    with client(first_run) as browser:
        response = browser.get("/api/users/currentuser")
    assert response.status_code == 200
    assert response.json() == {"currentUser": None}


def test_banner_tells_url_storage_and_how_to_trust_the_ca(first_run: MakeUp) -> None:
    assert f"https://localhost:{first_run.https_port}" in first_run.output
    assert str(first_run.ca_path) in first_run.output
    assert "update-ca-certificates" in first_run.output  # Linux
    assert "security add-trusted-cert" in first_run.output  # macOS
    assert "certutil -user -addstore Root" in first_run.output  # Windows
    assert "Firefox" in first_run.output
    if not os.environ.get("MONGO_URL") and not shutil.which("mongod"):
        assert "embedded in-memory store: clean slate on every start" in first_run.output


def test_logs_are_prefixed_with_the_process_name(first_run: MakeUp) -> None:
    assert any(line.startswith("auth ") and "|" in line for line in first_run.lines)
    assert any(line.startswith("nats ") and "|" in line for line in first_run.lines)


def test_signup_sets_a_secure_httponly_session_cookie(signed_up: dict[str, object]) -> None:
    response = signed_up["response"]
    assert isinstance(response, httpx.Response)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == signed_up["email"]
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("session=")]
    assert len(cookies) == 1
    attributes = {part.strip().split("=")[0].lower() for part in cookies[0].split(";")[1:]}
    assert {"secure", "httponly"} <= attributes
    assert "samesite=lax" in cookies[0].lower()


def test_currentuser_shows_the_signed_up_user(signed_up: dict[str, object]) -> None:
    current = signed_up["current"]
    assert isinstance(current, httpx.Response)
    user = current.json()["currentUser"]
    assert user["email"] == signed_up["email"]
    assert user["id"] == signed_up["response"].json()["id"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/api/users/no-such-route", "/api/no-such-api"])
def test_unknown_api_route_is_404_in_the_error_format(first_run: MakeUp, path: str) -> None:
    with client(first_run) as browser:
        response = browser.get(path)
    assert response.status_code == 404
    errors = response.json()["errors"]
    assert isinstance(errors, list) and errors and isinstance(errors[0]["message"], str)


def test_sigterm_stops_every_child_process(first_run: MakeUp) -> None:
    children = first_run.child_pids()
    # nats, the fake Stripe server, the entry point and at least auth and the client.
    assert len(children) >= 5, first_run.output[-3000:]
    first_run.process.send_signal(signal.SIGTERM)
    assert first_run.wait_exit() == 0
    assert [pid for pid in children if alive(pid)] == []


def test_second_start_reuses_the_ca_and_keys(
    first_run: MakeUp, data_dir: Path, signed_up: dict[str, object]
) -> None:
    first_run.stop()  # already stopped when the SIGTERM test ran first
    ca_before = (data_dir / "certs" / "ca.crt").read_bytes()
    keys_before = sorted((p.name, p.read_bytes()) for p in (data_dir / "keys").iterdir())
    session = signed_up["response"].cookies["session"]  # type: ignore[attr-defined]

    second = MakeUp(data_dir).start()
    try:
        assert (data_dir / "certs" / "ca.crt").read_bytes() == ca_before
        assert sorted((p.name, p.read_bytes()) for p in (data_dir / "keys").iterdir()) == (
            keys_before
        )
        # The old CA still verifies the entry point, and a session signed before the restart is
        # still accepted: the JWT key pair is the same.
        with client(second) as browser:
            response = browser.get(
                "/api/users/currentuser", headers={"Cookie": f"session={session}"}
            )
            current = response.json()["currentUser"]
        assert current is not None and current["email"] == signed_up["email"]
    finally:
        second.stop()


def test_a_taken_port_is_named_and_exits_non_zero(tmp_path: Path) -> None:
    run = MakeUp(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", run.https_port))
        squatter.listen()
        run.launch()
        code = run.wait_exit(timeout=60)
    assert code != 0
    assert f"port {run.https_port}" in run.output
    assert not (tmp_path / "nats").exists()  # nothing was started
