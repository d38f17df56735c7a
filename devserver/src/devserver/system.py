"""The whole system on one machine as `make up` runs it: infrastructure, services, entry point.

`System` starts every part as its own child process, shows each one's output line by line
prefixed with its name (and keeps it under data_dir/logs), waits until every service answers
/readyz, and stops every child on `stop()`. The e2e fixture drives the same class on free ports.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from gittix_testing.processes import die_with_parent, find_executable, wait_for_port

from devserver.certs import ensure_ca, server_certificate
from devserver.keys import ensure_jwt_keys
from devserver.routing import SERVICES, ServiceProcess

# The hosts the entry point's certificate covers.
TLS_HOSTS = ["localhost", "127.0.0.1", "::1"]
DEFAULT_HTTPS_PORT = 8443
DEFAULT_NATS_PORT = 4222
DEFAULT_STRIPE_PORT = 8420
# Not mongod's usual 27017: a developer's own MongoDB often runs there already.
DEFAULT_MONGO_PORT = 27117
# The fake Stripe server accepts any key; payments still needs one set.
LOCALSTRIPE_SECRET_KEY = "sk_test_localstripe"
READY_TIMEOUT_SECONDS = 120.0


class PortInUseError(RuntimeError):
    """A port `make up` needs is taken by another program."""


class StartupError(RuntimeError):
    """A part of the system did not come up."""


def repo_root() -> Path:
    """The workspace root (this file lives in devserver/src/devserver/)."""
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").exists() else Path.cwd()


@dataclass
class SystemConfig:
    """Where everything listens and lives; defaults are `make up`'s."""

    data_dir: Path
    https_port: int = DEFAULT_HTTPS_PORT
    nats_port: int = DEFAULT_NATS_PORT
    stripe_port: int = DEFAULT_STRIPE_PORT
    mongo_port: int = DEFAULT_MONGO_PORT
    # Service name -> port; a service missing here gets its dev_port from routing.SERVICES.
    service_ports: dict[str, int] = field(default_factory=dict)
    # Extra environment for every service (e.g. ORDER_EXPIRATION_SECONDS="3").
    env: dict[str, str] = field(default_factory=dict)
    # None: every service in routing.SERVICES that is importable; else only these.
    services: frozenset[str] | None = None
    # Where the prefixed log lines go (besides data_dir/logs/<name>.log).
    output: TextIO = field(default_factory=lambda: sys.stdout)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "SystemConfig":
        data_dir = environ.get("TICKETING_DATA_DIR") or str(repo_root() / ".data")
        https = int(environ.get("TICKETING_HTTPS_PORT") or DEFAULT_HTTPS_PORT)
        return cls(data_dir=Path(data_dir).resolve(), https_port=https)

    def port_of(self, service: ServiceProcess) -> int:
        return self.service_ports.get(service.name, service.dev_port)


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


_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _popen(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a child from one long-lived thread, whichever thread asks.

    PR_SET_PDEATHSIG fires when the *thread* that started a child exits, not the process: a
    service restarted from a short-lived thread (asyncio.to_thread, an executor torn down with
    a test's event loop) would otherwise be killed when that thread goes away.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devserver-spawn")
    return _spawner.submit(_popen, args, env).result()


class Child:
    """One named child process of the system and the thread that shows its output.

    Children run in their own session: a Ctrl-C in the terminal reaches only `make up`, which
    then stops them in order (entry point, services, infrastructure) instead of all at once.
    They still die with their parent if it is killed outright (PR_SET_PDEATHSIG).
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        pump: LogPump,
        ready_port: int | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.pump = pump
        self.ready_port = ready_port
        self.process: subprocess.Popen[bytes] | None = None
        # Set once an unexpected exit has been reported, so it is reported once.
        self.reported_exit = False
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    def start(self) -> None:
        self.reported_exit = False
        self.process = spawn(self.args, {**os.environ, **self.env})
        assert self.process.stdout is not None
        self._reader = self.pump.follow(self.process.stdout)

    def terminate(self) -> None:
        """Ask the child to stop (SIGTERM) without waiting."""
        if self.process is not None and self.running:
            self.process.terminate()

    def wait_stopped(self, timeout: float = 10.0) -> None:
        """Wait for the child to exit; SIGKILL it if it has not after `timeout`."""
        if self.process is not None:
            self.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._join_reader()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.running:
            self.process.kill()
            self.process.wait()
        self._join_reader()

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


def importable(service: ServiceProcess) -> bool:
    module = service.factory.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the package itself is missing
        return False


def trust_instructions(ca_cert: Path) -> str:
    ca = str(ca_cert)
    return "\n".join(
        [
            f"  Trust the development CA once ({ca}) so browsers show no warning:",
            f"    Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/gittix-dev-ca.crt"
            " && sudo update-ca-certificates",
            f"    Fedora/RHEL:   sudo cp {ca} /etc/pki/ca-trust/source/anchors/gittix-dev-ca.crt"
            " && sudo update-ca-trust",
            "    macOS:         sudo security add-trusted-cert -d -r trustRoot"
            f" -k /Library/Keychains/System.keychain {ca}",
            f"    Windows:       certutil -user -addstore Root {ca}",
            "    Chrome/Chromium on Linux (NSS):"
            f" certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n 'GitTix dev CA' -i {ca}",
            "    Firefox:       for p in ~/.mozilla/firefox/*.default*; do certutil -d sql:$p -A"
            f" -t C,, -n 'GitTix dev CA' -i {ca}; done   (or Settings > Certificates > Import)",
            f"    curl:          curl --cacert {ca} https://localhost:<port>/...",
        ]
    )


class System:
    """Every process of the system. `start()` brings it up, `stop()` takes all of it down."""

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.children: dict[str, Child] = {}
        self.services: dict[str, ServiceProcess] = {}
        self.skipped: list[str] = []
        self.storage_mode = ""
        self.mongo_url: str | None = None
        self.stripe_api_base: str | None = None
        self.ca_cert: Path | None = None
        self._pumps_created = 0
        self._log_dir = self.data_dir / "logs"

    # -- what callers read -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://localhost:{self.config.https_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.config.nats_port}"

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config.port_of(self.services[name])}"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start everything and wait until it is ready; on any failure nothing is left running."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        cfg = self.config
        wanted = [s for s in SERVICES if cfg.services is None or s.name in cfg.services]
        unknown = set(cfg.services or ()) - {s.name for s in SERVICES}
        if unknown:
            raise StartupError(f"no such service: {', '.join(sorted(unknown))}")
        for service in wanted:
            if importable(service):
                self.services[service.name] = service
            else:
                self.skipped.append(service.name)
        if cfg.services is not None and self.skipped:
            # Asked for by name (a test): a missing one is an error, not something to skip.
            missing = ", ".join(f"{name} ({_module(name)})" for name in self.skipped)
            raise StartupError(f"cannot start {missing}: no such module")
        self._check_ports()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = ensure_jwt_keys(self.data_dir)
        self.ca_cert, _ = ensure_ca(self.data_dir)
        cert, key = server_certificate(self.data_dir, TLS_HOSTS, "localhost")
        for name in self.skipped:
            self._say(f"{name}: no module {_module(name)} yet, not started")

        self._start_infrastructure()
        base_env = self._service_env(public_pem)
        for name, service in self.services.items():
            env = dict(base_env)
            if name == "auth":
                env["JWT_PRIVATE_KEY"] = private_pem
            self._add_child(name, self._uvicorn_args(service), env, ready_port=cfg.port_of(service))
        for name in self.services:
            self.children[name].start()
        for name in self.services:
            self._wait_ready(name)

        upstreams = [f"{name}={cfg.port_of(s)}" for name, s in self.services.items()]
        proxy = self._add_child(
            "proxy",
            [
                sys.executable,
                "-m",
                "devserver.proxy",
                "--port",
                str(cfg.https_port),
                "--cert",
                str(cert),
                "--key",
                str(key),
                *(arg for upstream in upstreams for arg in ("--upstream", upstream)),
            ],
            {"PYTHONUNBUFFERED": "1"},
            ready_port=cfg.https_port,
        )
        proxy.start()
        self._wait_port(proxy)

    def _setting(self, name: str) -> str | None:
        """An environment setting: the config's overrides first, then this process's env."""
        return self.config.env.get(name) or os.environ.get(name) or None

    def _check_ports(self) -> None:
        cfg = self.config
        needed = [
            (cfg.https_port, "HTTPS entry point, TICKETING_HTTPS_PORT"),
            (cfg.nats_port, "NATS"),
        ]
        if not self._setting("STRIPE_SECRET_KEY"):
            needed.append((cfg.stripe_port, "fake Stripe server"))
        if not self._setting("MONGO_URL") and shutil.which("mongod"):
            needed.append((cfg.mongo_port, "mongod"))
        needed += [(cfg.port_of(s), f"{name} service") for name, s in self.services.items()]
        for port, what in needed:
            ensure_port_free(port, what)

    def _start_infrastructure(self) -> None:
        cfg = self.config
        nats_store = self.data_dir / "nats"
        mongo_url = self._setting("MONGO_URL")
        mongod = shutil.which("mongod")
        if mongo_url:
            self.mongo_url = mongo_url
            self.storage_mode = (
                "MongoDB at MONGO_URL (one database per service): data and the "
                "NATS stream persist across restarts"
            )
        elif mongod:
            mongo_dir = self.data_dir / "mongo"
            mongo_dir.mkdir(parents=True, exist_ok=True)
            self.mongo_url = f"mongodb://127.0.0.1:{cfg.mongo_port}/"
            self.storage_mode = (
                f"local mongod, data in {mongo_dir}: data and the NATS stream "
                "persist across restarts"
            )
            self._add_child(
                "mongod",
                [
                    mongod,
                    "--dbpath",
                    str(mongo_dir),
                    "--bind_ip",
                    "127.0.0.1",
                    "--port",
                    str(cfg.mongo_port),
                ],
                {},
                ready_port=cfg.mongo_port,
            ).start()
        else:
            # Databases start empty, so the stream must too: old events would meet no data.
            shutil.rmtree(nats_store, ignore_errors=True)
            self.storage_mode = (
                "embedded in-memory store: clean slate on every start "
                "(databases and the NATS stream)"
            )
        nats_store.mkdir(parents=True, exist_ok=True)
        self._add_child(
            "nats",
            [
                find_executable("nats-server"),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(cfg.nats_port),
                "-sd",
                str(nats_store),
                "--server_name",
                "gittix-dev",
            ],
            {},
            ready_port=cfg.nats_port,
        ).start()
        if not self._setting("STRIPE_SECRET_KEY"):
            self.stripe_api_base = f"http://127.0.0.1:{cfg.stripe_port}"
            self._add_child(
                "stripe",
                [
                    sys.executable,
                    "-m",
                    "gittix_testing.localstripe_server",
                    "--port",
                    str(cfg.stripe_port),
                ],
                {"PYTHONUNBUFFERED": "1"},
                ready_port=cfg.stripe_port,
            ).start()
        for name in ("mongod", "nats", "stripe"):
            if name in self.children:
                self._wait_port(self.children[name])

    def _service_env(self, public_pem: str) -> dict[str, str]:
        env = {
            "PYTHONUNBUFFERED": "1",
            "NATS_URL": self.nats_url,
            "JWT_PUBLIC_KEY": public_pem,
            # Only auth gets the private key (set per child), even if this shell has one.
            "JWT_PRIVATE_KEY": "",
        }
        if self.mongo_url:
            env["MONGO_URL"] = self.mongo_url
        if self.stripe_api_base:
            env["STRIPE_SECRET_KEY"] = LOCALSTRIPE_SECRET_KEY
            env["STRIPE_API_BASE"] = self.stripe_api_base
        env.update(self.config.env)
        return env

    def _uvicorn_args(self, service: ServiceProcess) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            service.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.config.port_of(service)),
            # Longer than the entry point's pooled keep-alive, so the service never closes a
            # connection the proxy is about to reuse.
            "--timeout-keep-alive",
            "30",
            "--no-access-log",
        ]

    def _add_child(
        self, name: str, args: list[str], env: dict[str, str], ready_port: int | None = None
    ) -> Child:
        width = max(len(n) for n in [*(s.name for s in SERVICES), "stripe", "mongod", "proxy"])
        pump = LogPump(name, width, self.config.output, self._log_dir, self._pumps_created)
        self._pumps_created += 1
        child = Child(name, args, env, pump, ready_port)
        self.children[name] = child
        return child

    def _wait_port(self, child: Child, timeout: float = 60.0) -> None:
        assert child.ready_port is not None
        try:
            wait_for_port(child.ready_port, timeout=timeout, process=child.process)
        except (RuntimeError, TimeoutError) as error:
            raise StartupError(f"{child.name} did not start: {error}{child.tail()}") from None

    def _wait_ready(self, name: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        child = self.children[name]
        url = f"{self.service_url(name)}/readyz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.running:
                child.wait_stopped(timeout=1)  # let its last lines reach the log
                raise StartupError(
                    f"{name} exited with code {child.returncode} before it was ready "
                    f"(see {child.pump.log_path}){child.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet, or 503 until Mongo and NATS are reachable
            time.sleep(0.2)
        raise StartupError(f"{name} was not ready after {timeout:.0f}s ({url}){child.tail()}")

    def restart_service(self, name: str) -> None:
        """Stop one service gracefully, start it again and wait until it is ready."""
        self.stop_service(name)
        self.start_service(name)

    def stop_service(self, name: str) -> None:
        child = self.children[name]
        child.terminate()
        child.wait_stopped()

    def kill_service(self, name: str) -> None:
        """Stop one service abruptly (SIGKILL), as a crash would."""
        self.children[name].kill()

    def start_service(self, name: str) -> None:
        """Start a stopped or killed service again and wait until it answers /readyz."""
        child = self.children[name]
        if child.running:
            raise RuntimeError(f"{name} is already running")
        ensure_port_free(child.ready_port or 0, f"{name} service")
        child.start()
        self._wait_ready(name)

    def stop(self) -> None:
        """Stop every child: the entry point, then the services, then infrastructure."""
        order = ["proxy", *self.services, "stripe", "nats", "mongod"]
        groups = [
            [self.children[n] for n in order[:1] if n in self.children],
            [self.children[n] for n in self.services if n in self.children],
            [self.children[n] for n in order[-3:] if n in self.children],
        ]
        for group in groups:
            for child in group:
                child.terminate()  # all of a group at once, so shutdowns overlap
            for child in group:
                child.wait_stopped()

    def report_exits(self) -> None:
        """Say once about each child that has exited on its own while the system runs."""
        for name, child in self.children.items():
            if child.process is not None and not child.running and not child.reported_exit:
                child.reported_exit = True
                self._say(f"{name} exited with code {child.returncode} (see {child.pump.log_path})")

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items() if child.pid}

    def banner(self) -> str:
        assert self.ca_cert is not None
        started = ", ".join(self.services) or "none"
        lines = [
            "",
            "=" * 78,
            f"  GitTix is up:  {self.url}   (also https://127.0.0.1:{self.config.https_port})",
            f"  services:      {started}",
        ]
        if self.skipped:
            lines.append(f"  not started:   {', '.join(self.skipped)} (no app module yet)")
        lines += [
            f"  NATS:          {self.nats_url} (JetStream)",
            f"  Stripe:        {'fake Stripe server at ' + self.stripe_api_base if self.stripe_api_base else 'STRIPE_SECRET_KEY from the environment'}",  # noqa: E501
            f"  storage:       {self.storage_mode}",
            f"  data dir:      {self.data_dir} (keys, certificates, NATS store, logs)",
            trust_instructions(self.ca_cert),
            "  Stop with Ctrl-C.",
            "=" * 78,
            "",
        ]
        return "\n".join(lines)

    def _say(self, message: str) -> None:
        try:
            self.config.output.write(f"devserver: {message}\n")
            self.config.output.flush()
        except (ValueError, OSError):
            pass


def _module(name: str) -> str:
    factory = next(s.factory for s in SERVICES if s.name == name)
    return factory.partition(":")[0]
