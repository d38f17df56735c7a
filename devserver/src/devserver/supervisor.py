"""Child processes of `make up`: start them, show their output line by line, stop them in order.

Nothing here knows what a child is; system.py and infrastructure.py say what to run.
"""

import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from gittix_testing.processes import ManagedProcess, wait_for_port


class PortInUseError(RuntimeError):
    """A port `make up` needs is taken by another program."""


class StartupError(RuntimeError):
    """A part of the system did not come up."""


@dataclass(frozen=True)
class Command:
    """What to run as one named child, and the port that answers once it is up."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready_port: int | None = None


class LogPump:
    """Copies a child's output to the console, each line prefixed with its name, and to a file."""

    _lock = threading.Lock()
    _colours = ("36", "32", "33", "35", "34", "96", "92", "93", "95", "94")

    def __init__(self, name: str, width: int, output: TextIO, log_dir: Path, index: int) -> None:
        self.name = name
        self.output = output
        self.log_path = log_dir / f"{name}.log"
        label = name.ljust(width)
        if output.isatty():
            label = f"\033[{self._colours[index % len(self._colours)]}m{label}\033[0m"
        self.prefix = f"{label} | "

    def follow(self, stream: IO[bytes]) -> threading.Thread:
        thread = threading.Thread(
            target=self._copy, args=(stream,), daemon=True, name=f"log-{self.name}"
        )
        thread.start()
        return thread

    def _copy(self, stream: IO[bytes]) -> None:
        with self.log_path.open("ab") as log_file:
            for raw in iter(stream.readline, b""):
                log_file.write(raw)
                log_file.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                with self._lock:
                    try:
                        self.output.write(f"{self.prefix}{line}\n")
                        self.output.flush()
                    except (ValueError, OSError):  # console closed while stopping
                        pass


class Child:
    """One named child process of the system and the thread that shows its output.

    Children run in their own session: a Ctrl-C in the terminal reaches only `make up`, which
    then stops them in order (entry point, services, infrastructure) instead of all at once.
    They still die with their parent if it is killed outright (PR_SET_PDEATHSIG), and are
    started from one long-lived thread (gittix_testing.processes.spawn), so a restart from a
    short-lived thread does not tie them to it.
    """

    def __init__(self, command: Command, pump: LogPump) -> None:
        self.name = command.name
        self.ready_port = command.ready_port
        self.pump = pump
        self._managed = ManagedProcess(
            command.name,
            command.args,
            env=command.env,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            new_session=True,
        )
        # Set once an unexpected exit has been reported, so it is reported once.
        self.reported_exit = False
        self._reader: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._managed.process

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def start(self) -> "Child":
        self.reported_exit = False
        process = self._managed.start().process
        assert process is not None and process.stdout is not None
        self._reader = self.pump.follow(process.stdout)
        return self

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM) without waiting."""
        if self.process is not None and self.running:
            self.process.terminate()

    def wait_stopped(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM) and wait; SIGKILL it if it has not exited after `timeout`."""
        self._managed.stop(timeout=timeout)
        self._join_reader()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        self._managed.kill()
        self._join_reader()

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Wait until the child accepts connections on its ready port."""
        assert self.ready_port is not None
        try:
            wait_for_port(self.ready_port, timeout=timeout, process=self.process)
        except (RuntimeError, TimeoutError) as error:
            raise StartupError(f"{self.name} did not start: {error}{self.tail()}") from None

    def tail(self, lines: int = 30) -> str:
        """The last lines this child printed, for error messages."""
        if not self.pump.log_path.exists():
            return ""
        last = self.pump.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "".join(f"\n  {self.name} | {line}" for line in last)

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2)


def ensure_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers themselves do: a port left in TIME_WAIT by our last run is usable.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUseError(f"port {port} ({what}) is already in use") from None


def stop_in_order(groups: list[list[Child]]) -> None:
    """Stop each group after the one before it; the children of one group all at once."""
    for group in groups:
        for child in group:
            child.terminate()  # all of a group at once, so shutdowns overlap
        for child in group:
            child.wait_stopped()
