"""The e2e harness: the system on free ports, env overrides, and restarting one service."""

import io
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from devserver.harness import RunningSystem, free_ports, running_system
from devserver.system import StartupError, System, SystemConfig

from devserver import infrastructure
from devserver import system as system_module


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    data_dir = tmp_path_factory.mktemp("harness")
    with running_system(
        data_dir, env={"ORDER_EXPIRATION_SECONDS": "3"}, services=frozenset({"auth", "client"})
    ) as running:
        yield running


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (entry.decode(errors="replace").partition("=") for entry in raw if entry)
    return {name: value for name, _, value in pairs}


async def test_entry_point_answers_over_https(system: RunningSystem) -> None:
    async with system.client() as browser:
        response = await browser.get("/api/users/currentuser")
    assert response.json() == {"currentUser": None}
    assert system.services == ["auth", "client"]


def test_env_overrides_reach_services_and_only_auth_holds_the_private_key(
    system: RunningSystem,
) -> None:
    pids = system.system.pids()
    auth, client = environment_of(pids["auth"]), environment_of(pids["client"])
    assert auth["ORDER_EXPIRATION_SECONDS"] == client["ORDER_EXPIRATION_SECONDS"] == "3"
    # Each service is on the bus as its own user, never as the admin the tests use.
    assert auth["NATS_URL"] == system.system.bus_url("auth") != system.nats_url
    assert "NATS_URL" not in client
    assert "PRIVATE KEY" in auth["JWT_PRIVATE_KEY"]
    assert client.get("JWT_PRIVATE_KEY", "") == ""
    assert "PUBLIC KEY" in client["JWT_PUBLIC_KEY"]


def test_the_go_programs_run_go_code_on_one_thread(system: RunningSystem) -> None:
    # NATS and Caddy: one thread for Go code costs them a third less CPU per request on a small
    # machine (devserver.infrastructure.go_runtime_env); a developer's own GOMAXPROCS wins.
    pids = system.system.pids()
    for name in ("nats", "caddy"):
        assert environment_of(pids[name]).get("GOMAXPROCS") == "1", name


def test_a_gomaxprocs_of_the_shell_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOMAXPROCS", "4")
    assert infrastructure.go_runtime_env() == {}


async def test_a_killed_service_is_502_until_it_is_started_again(system: RunningSystem) -> None:
    before = system.system.pids()["auth"]
    system.kill("auth")
    async with system.client() as browser:
        down = await browser.get("/api/users/currentuser")
        system.start("auth")
        back = await browser.get("/api/users/currentuser")
    assert down.status_code == 502
    assert down.json() == {"errors": [{"message": "The auth service is unavailable"}]}
    assert back.status_code == 200
    assert system.system.pids()["auth"] != before


async def test_restart_brings_a_service_back_ready(system: RunningSystem) -> None:
    before = system.system.pids()["auth"]
    system.restart("auth")
    async with system.client() as browser:
        response = await browser.get("/api/users/currentuser")
    assert response.status_code == 200
    assert system.system.pids()["auth"] != before
    assert "Shutting down" in system.log("auth")  # it was stopped gracefully, not killed


def test_a_service_that_crashes_at_start_fails_the_start_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    https, nats, stripe, mongo, auth = free_ports(5)
    config = SystemConfig(
        data_dir=tmp_path,
        https_port=https,
        nats_port=nats,
        stripe_port=stripe,
        mongo_port=mongo,
        service_ports={"auth": auth},
        env={"JWT_PUBLIC_KEY": "not a key"},
        services=frozenset({"auth"}),
        output=io.StringIO(),
    )
    system = System(config)
    with pytest.raises(StartupError, match="auth exited with code") as failure:
        system.start()
    assert "JWT_PUBLIC_KEY" in str(failure.value)  # its last lines say why
    started = [child.pid for child in system.children.values() if child.pid]
    assert len(started) >= 3  # nats, the fake Stripe server, auth
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists() and not zombie(pid)]


def zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_asking_for_an_unknown_service_is_an_error(tmp_path: Path) -> None:
    system = System(SystemConfig(data_dir=tmp_path, services=frozenset({"auth", "billing"})))
    with pytest.raises(StartupError, match="no such service: billing"):
        system.start()
    assert system.children == {}


def test_asking_for_a_service_that_is_not_built_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `make up` skips a service with no app module; a test that names it must not run without it.
    monkeypatch.setattr(system_module, "importable", lambda service: service.name != "tickets")
    system = System(SystemConfig(data_dir=tmp_path, services=frozenset({"auth", "tickets"})))
    with pytest.raises(StartupError, match=r"cannot start tickets \(tickets\.app\)"):
        system.start()
    assert system.children == {}


async def test_a_service_restarted_from_a_short_lived_thread_outlives_it(
    system: RunningSystem,
) -> None:
    # What `await asyncio.to_thread(system.restart, "auth")` does; the thread then ends.
    worker = threading.Thread(target=system.restart, args=("auth",))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "restarting auth took more than 60s"
    process = system.system.children["auth"].process
    assert process is not None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=3)  # a child tied to the ended thread would get SIGTERM at once
    async with system.client() as browser:
        assert (await browser.get("/api/users/currentuser")).status_code == 200
