"""A child of `make up` that never listens, or exits first, fails its start with its name."""

import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from devserver.supervisor import Child, Command, LogPump, StartupError
from gittix_testing import free_port


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


def start(children: list[Child], tmp_path: Path, code: str, port: int) -> Child:
    pump = LogPump("probe", 5, io.StringIO(), tmp_path, 0)
    child = Child(Command("probe", [sys.executable, "-c", code], ready_port=port), pump)
    children.append(child)
    return child.start()


def test_a_child_that_listens_is_started(children: list[Child], tmp_path: Path) -> None:
    port = free_port()
    serve = (
        "import socket, time; s = socket.socket();"
        f" s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    )
    start(children, tmp_path, serve, port).wait_listening(timeout=20)


def test_a_child_that_never_listens_fails_when_its_time_is_up(
    children: list[Child], tmp_path: Path
) -> None:
    port = free_port()
    child = start(
        children, tmp_path, "import time; print('thinking', flush=True); time.sleep(60)", port
    )

    with pytest.raises(
        StartupError,
        match=rf"probe did not start: nothing listening on 127\.0\.0\.1:{port} \(not within 0\.5s",
    ):
        child.wait_listening(timeout=0.5)
    assert child.running  # it was slow, not dead: stopping it is the caller's choice


def test_a_child_that_exits_fails_at_once_with_its_exit_code(
    children: list[Child], tmp_path: Path
) -> None:
    child = start(children, tmp_path, "raise SystemExit(3)", free_port())

    with pytest.raises(StartupError, match="probe did not start: process exited with 3"):
        child.wait_listening(timeout=20)
