"""`make up`'s service runner (devserver.serve): uvicorn serving a factory, waking once a
second: it answers, its Date header moves on, and a stop signal ends it cleanly."""

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gittix_testing.processes import ManagedProcess, free_port
from gittix_testing.waiting import wait_until_sync

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"up"})


def create_app():
    return app
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ManagedProcess, int, Path]]:
    (tmp_path / "tiny_app.py").write_text(APP)
    port = free_port()
    output = tmp_path / "output.log"
    with output.open("wb") as log:
        process = ManagedProcess(
            "tiny",
            [sys.executable, "-m", "devserver.serve", "tiny_app:create_app", "--port", str(port)],
            port=port,
            env={"PYTHONPATH": str(tmp_path)},
            stdout=log,
        )
        with process:
            yield process, port, output


def test_it_serves_the_factory_s_app_with_a_date_header_that_moves_on(
    served: tuple[ManagedProcess, int, Path],
) -> None:
    _, port, _ = served
    first = httpx.get(f"http://127.0.0.1:{port}/")
    assert (first.status_code, first.text) == (200, "up")

    def later_date() -> bool:
        return httpx.get(f"http://127.0.0.1:{port}/").headers["date"] != first.headers["date"]

    # The header is refreshed once a second, as uvicorn's own loop does.
    wait_until_sync(later_date, timeout=5, message="the Date header never changed")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_it_cleanly(
    served: tuple[ManagedProcess, int, Path], sig: signal.Signals
) -> None:
    process, _, output = served
    assert process.process is not None
    process.process.send_signal(sig)
    try:
        code = process.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 10 s after the signal")
    # uvicorn shuts down, then raises the signal again for whoever waits (its own behaviour).
    assert code in (0, -sig)
    assert "Finished server process" in output.read_text()
