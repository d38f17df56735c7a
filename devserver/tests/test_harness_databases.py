"""The e2e harness on a shared MONGO_URL (`MONGO_URL=... make test`): every system it starts
uses databases of its own there and drops them when it stops."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from devserver.harness import running_system
from gittix_testing import free_port
from gittix_testing.processes import ManagedProcess
from pymongo import MongoClient

PASSWORD = "correct horse battery staple"


@pytest.fixture
def shared_mongo(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database server in this run's MONGO_URL, as CI's MongoDB service is."""
    port = free_port()
    server = ManagedProcess(
        "mongo",
        [sys.executable, "-m", "gittix_testing.mongo_server", "--port", str(port)],
        port=port,
    )
    with server:
        url = f"mongodb://127.0.0.1:{port}/"
        monkeypatch.setenv("MONGO_URL", url)
        yield url


def database_names(url: str) -> list[str]:
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        return client.list_database_names()
    finally:
        client.close()


async def test_each_system_has_its_own_databases_and_drops_them(
    shared_mongo: str, tmp_path: Path
) -> None:
    with running_system(tmp_path / "one", services=frozenset({"auth"})) as system:
        async with system.client() as browser:
            response = await browser.post(
                "/api/users/signup", json={"email": "a@example.com", "password": PASSWORD}
            )
            assert response.status_code == 201, response.text
        during = database_names(shared_mongo)
    ours = [name for name in during if name.startswith("gittix_e2e_") and name.endswith("_auth")]
    assert len(ours) == 1, during
    # Not the name every `make up` on that server uses.
    assert "auth" not in during
    assert ours[0] not in database_names(shared_mongo)
