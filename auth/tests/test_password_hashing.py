"""Password hashing bounded in memory: argon2id within OWASP's parameters, at most
HASH_CONCURRENCY hashes at once (sized from the container's memory limit), a short queue, and
past it 503 with Retry-After instead of more memory. The load against a real auth process is
e2e/test_auth_load.py."""

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth.passwords import concurrency_for, container_memory_limit
from gittix_testing import wait_until
from pwdlib import PasswordHash

from auth import passwords

MIB = 1024 * 1024


class HeldHasher:
    """The real hasher, except that each verification waits until the test lets it go."""

    def __init__(self, real: PasswordHash) -> None:
        self.real = real
        self.release = threading.Event()
        self.started = 0

    def hash(self, password: str) -> str:
        return self.real.hash(password)

    def verify(self, password: str, password_hash: str) -> bool:
        self.started += 1
        self.release.wait(timeout=30)
        return self.real.verify(password, password_hash)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldHasher]:
    hasher = HeldHasher(passwords._hasher)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    yield hasher
    hasher.release.set()


def sign_in(client: httpx.AsyncClient) -> "asyncio.Task[httpx.Response]":
    body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "pw123456"}
    return asyncio.create_task(client.post("/api/users/signin", json=body))


def test_parameters_are_owasps_argon2id_and_old_hashes_still_verify() -> None:
    fresh = passwords._hasher.hash("pw123456")
    # pwdlib's former defaults (64 MiB, t=3, p=4), as stored by earlier versions.
    old = "$argon2id$v=19$m=65536,t=3,p=4$"

    assert fresh.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    legacy = PasswordHash.recommended().hash("pw123456")
    assert legacy.startswith(old)
    assert passwords._hasher.verify("pw123456", legacy)


def test_concurrency_is_sized_from_the_memory_limit() -> None:
    assert concurrency_for(512 * MIB) == 8  # the pod's limit: capped by the cores, not memory
    assert concurrency_for(256 * MIB) == 3
    assert concurrency_for(128 * MIB) == 1  # never none


def test_the_limit_is_read_from_the_cgroup_when_there_is_one(tmp_path: Path) -> None:
    limited, unlimited = tmp_path / "limited", tmp_path / "unlimited"
    limited.write_text("536870912\n")
    unlimited.write_text("max\n")

    assert container_memory_limit(limited) == 512 * MIB
    assert container_memory_limit(unlimited) is None
    assert container_memory_limit(tmp_path / "absent") is None


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASH_CONCURRENCY", "1")
    monkeypatch.setenv("HASH_QUEUE", "1")
    monkeypatch.setenv("HASH_QUEUE_WAIT_SECONDS", "30")


async def test_past_the_queue_sign_ins_get_503_with_retry_after(
    one_at_a_time: None, held: HeldHasher, client: httpx.AsyncClient
) -> None:
    requests = [sign_in(client) for _ in range(4)]

    # One hashes (held), one waits for the thread, and the other two are turned away at once.
    await wait_until(
        lambda: sum(request.done() for request in requests) == 2,
        timeout=10,
        message="two sign-ins should have been turned away",
    )
    finished = [request for request in requests if request.done()]
    turned_away = [request.result() for request in finished]
    assert held.started == 1
    held.release.set()
    answered = [await request for request in requests if request not in finished]

    for response in turned_away:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "errors": [{"message": "Too many sign-ins at once; try again in a moment"}]
        }
    assert sorted(response.status_code for response in [*turned_away, *answered]) == [
        400,
        400,
        503,
        503,
    ]


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HASH_CONCURRENCY", "1")
    monkeypatch.setenv("HASH_QUEUE_WAIT_SECONDS", "0.2")


async def test_a_sign_in_waits_for_a_thread_only_so_long(
    short_wait: None, held: HeldHasher, client: httpx.AsyncClient
) -> None:
    first = sign_in(client)
    await wait_until(lambda: held.started == 1, timeout=10, message="the first never hashed")

    waited = await client.post(
        "/api/users/signin", json={"email": "b@example.com", "password": "pw123456"}
    )

    assert waited.status_code == 503
    assert waited.headers["retry-after"] == "1"
    held.release.set()
    assert (await first).status_code == 400
