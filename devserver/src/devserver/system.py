"""The whole system on one machine as `make up` runs it: infrastructure, services, entry point.

`System` starts every part as its own child process (supervisor.py) in order: infrastructure
(infrastructure.py), then every service under uvicorn until each answers /readyz, then the
HTTPS entry point (entry_point.py, certificates from certs.py). `stop()` takes all of it down.
The e2e fixture drives the same class on free ports.
"""

import importlib.util
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gittix_testing.waiting import wait_until_sync

from devserver import entry_point, infrastructure
from devserver.certs import ensure_ca, server_certificate, trust_instructions
from devserver.keys import ensure_jwt_keys
from devserver.routing import SERVICES, ServiceProcess
from devserver.supervisor import (
    Child,
    Command,
    LogPump,
    StartupError,
    ensure_port_free,
    stop_in_order,
)

# The hosts the entry point's certificate covers.
TLS_HOSTS = ["localhost", "127.0.0.1", "::1"]
DEFAULT_HTTPS_PORT = 8443
DEFAULT_NATS_PORT = 4222
DEFAULT_STRIPE_PORT = 8420
# Not mongod's usual 27017: a developer's own MongoDB often runs there already.
DEFAULT_MONGO_PORT = 27117
READY_TIMEOUT_SECONDS = 120.0
ENTRY_POINT = "caddy"
INFRASTRUCTURE = ("stripe", "nats", "mongod")


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
    # With MONGO_URL: each data service's database is <prefix><service> instead of <service>,
    # so systems started side by side on one MongoDB (the e2e suites) never share data.
    database_prefix: str = ""
    # Where the prefixed log lines go (besides data_dir/logs/<name>.log).
    output: TextIO = field(default_factory=lambda: sys.stdout)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "SystemConfig":
        data_dir = environ.get("TICKETING_DATA_DIR") or str(repo_root() / ".data")
        https = int(environ.get("TICKETING_HTTPS_PORT") or DEFAULT_HTTPS_PORT)
        return cls(data_dir=Path(data_dir).resolve(), https_port=https)

    def port_of(self, service: ServiceProcess) -> int:
        return self.service_ports.get(service.name, service.dev_port)


def importable(service: ServiceProcess) -> bool:
    module = service.factory.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # the package itself is missing
        return False


class System:
    """Every process of the system. `start()` brings it up, `stop()` takes all of it down."""

    def __init__(self, config: SystemConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.children: dict[str, Child] = {}
        self.services: dict[str, ServiceProcess] = {}
        self.skipped: list[str] = []
        self.storage: infrastructure.Storage | None = None
        self.stripe_api_base: str | None = None
        self.ca_cert: Path | None = None
        self.bus: infrastructure.BusUsers | None = None
        self._pumps_created = 0
        self._log_dir = self.data_dir / "logs"

    # -- what callers read -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://localhost:{self.config.https_port}"

    @property
    def nats_address(self) -> str:
        return f"nats://127.0.0.1:{self.config.nats_port}"

    @property
    def nats_url(self) -> str:
        """NATS as the admin user (every right): for tools and tests, never for a service."""
        return self.bus_url(infrastructure.ADMIN_USER)

    def bus_url(self, user: str) -> str:
        """NATS as `user` (a service's name, or the admin), credentials included."""
        if self.bus is None:
            raise RuntimeError("the system has not started: no NATS users yet")
        return self.bus.url(self.config.nats_port, user)

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
        self._choose_services()
        self.storage = infrastructure.choose_storage(
            self.data_dir, self._setting("MONGO_URL"), cfg.mongo_port
        )
        self._check_ports()

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        private_pem, public_pem = ensure_jwt_keys(self.data_dir)
        self.ca_cert, _ = ensure_ca(self.data_dir)
        cert, key = server_certificate(self.data_dir, TLS_HOSTS, "localhost")
        for name in self.skipped:
            self._say(f"{name}: no module {_module(name)} yet, not started")

        self.bus = infrastructure.bus_users(self.data_dir)
        self._start_infrastructure(self.storage)
        base_env = self._service_env(public_pem)
        for name, service in self.services.items():
            env = dict(base_env)
            if service.owns_data:
                # Its own NATS user: it may publish only its own events (common.bus_permissions).
                env["NATS_URL"] = self.bus_url(name)
            if name == "auth":
                env["JWT_PRIVATE_KEY"] = private_pem
            if service.owns_data and cfg.database_prefix:
                env["MONGO_DATABASE"] = f"{cfg.database_prefix}{name}"
            args = self._uvicorn_args(service)
            self._add_child(Command(name, args, env, ready_port=cfg.port_of(service)))
        for name in self.services:
            self.children[name].start()
        for name in self.services:
            self._wait_ready(name)

        # Last, so the first request through it finds every service ready.
        caddy_dir = self.data_dir / "caddy"
        # The services' tracing setting turns the entry point's spans on too.
        otlp_endpoint = self._setting("OTEL_EXPORTER_OTLP_ENDPOINT")
        config = entry_point.caddy_config(
            port=cfg.https_port,
            upstreams={name: cfg.port_of(s) for name, s in self.services.items()},
            cert=cert,
            key=key,
            storage=caddy_dir / "data",
            tracing=bool(otlp_endpoint),
        )
        config_path = entry_point.write_config(caddy_dir / "caddy.json", config)
        command = Command(
            ENTRY_POINT,
            entry_point.caddy_args(config_path),
            {
                **entry_point.caddy_env(caddy_dir, otlp_endpoint),
                **infrastructure.go_runtime_env(),
                # The OpenTelemetry SDK settings given to the services apply to Caddy's too.
                **{k: v for k, v in self.config.env.items() if k.startswith("OTEL_BSP_")},
            },
            ready_port=cfg.https_port,
        )
        self._add_child(command).start().wait_listening()

    def _choose_services(self) -> None:
        cfg = self.config
        unknown = set(cfg.services or ()) - {s.name for s in SERVICES}
        if unknown:
            raise StartupError(f"no such service: {', '.join(sorted(unknown))}")
        for service in SERVICES:
            if cfg.services is not None and service.name not in cfg.services:
                continue
            if importable(service):
                self.services[service.name] = service
            else:
                self.skipped.append(service.name)
        if cfg.services is not None and self.skipped:
            # Asked for by name (a test): a missing one is an error, not something to skip.
            missing = ", ".join(f"{name} ({_module(name)})" for name in self.skipped)
            raise StartupError(f"cannot start {missing}: no such module")

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
        if self.storage is not None and self.storage.mongod is not None:
            needed.append((cfg.mongo_port, "mongod"))
        needed += [(cfg.port_of(s), f"{name} service") for name, s in self.services.items()]
        for port, what in needed:
            ensure_port_free(port, what)

    def _start_infrastructure(self, storage: infrastructure.Storage) -> None:
        cfg = self.config
        infrastructure.prepare_directories(self.data_dir, storage)
        assert self.bus is not None
        commands = [infrastructure.nats_server(self.data_dir, cfg.nats_port, self.bus)]
        if storage.mongod is not None:
            commands.insert(0, storage.mongod)
        if not self._setting("STRIPE_SECRET_KEY"):
            self.stripe_api_base = infrastructure.stripe_url(cfg.stripe_port)
            commands.append(infrastructure.fake_stripe(cfg.stripe_port))
        started = [self._add_child(command).start() for command in commands]
        for child in started:
            child.wait_listening()
        if self.stripe_api_base and "payments" in self.services:
            # Straight to payments' port: localstripe does not trust the entry point's dev CA.
            payments = cfg.port_of(self.services["payments"])
            infrastructure.register_webhook(
                cfg.stripe_port,
                f"http://127.0.0.1:{payments}/api/payments/webhooks",
                infrastructure.webhook_secret(self.data_dir),
            )

    def _service_env(self, public_pem: str) -> dict[str, str]:
        env = {
            "PYTHONUNBUFFERED": "1",
            "JWT_PUBLIC_KEY": public_pem,
            # Only auth gets the private key (set per child), even if this shell has one.
            "JWT_PRIVATE_KEY": "",
        }
        if self.storage is not None and self.storage.mongo_url:
            env["MONGO_URL"] = self.storage.mongo_url
        if self.stripe_api_base:
            env.update(
                infrastructure.fake_stripe_env(
                    self.config.stripe_port, infrastructure.webhook_secret(self.data_dir)
                )
            )
        env.update(self.config.env)
        return env

    def _uvicorn_args(self, service: ServiceProcess) -> list[str]:
        # uvicorn, through devserver.serve: its server woken once a second rather than ten times.
        return [
            sys.executable,
            "-m",
            "devserver.serve",
            service.factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.config.port_of(service)),
            # Longer than the entry point's pooled keep-alive, so the service never closes a
            # connection the proxy is about to reuse.
            "--timeout-keep-alive",
            "30",
        ]

    def _add_child(self, command: Command) -> Child:
        width = max(len(n) for n in [*(s.name for s in SERVICES), *INFRASTRUCTURE, ENTRY_POINT])
        pump = LogPump(command.name, width, self.config.output, self._log_dir, self._pumps_created)
        self._pumps_created += 1
        child = Child(command, pump)
        self.children[command.name] = child
        return child

    def _wait_ready(self, name: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        child = self.children[name]
        url = f"{self.service_url(name)}/readyz"

        def ready() -> bool:
            if not child.running:
                child.wait_stopped(timeout=1)  # let its last lines reach the log
                raise StartupError(
                    f"{name} exited with code {child.returncode} before it was ready "
                    f"(see {child.pump.log_path}){child.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(response.status == 200)
            except (urllib.error.URLError, OSError):
                return False  # not listening yet, or 503 until Mongo and NATS are reachable

        try:
            wait_until_sync(
                ready, timeout=timeout, message=f"{name} /readyz", interval=0.2, error=TimeoutError
            )
        except TimeoutError:
            raise StartupError(
                f"{name} was not ready after {timeout:.0f}s ({url}){child.tail()}"
            ) from None

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
        groups = [[ENTRY_POINT], list(self.services), list(INFRASTRUCTURE)]
        stop_in_order([[self.children[n] for n in g if n in self.children] for g in groups])

    def report_exits(self) -> None:
        """Say once about each child that has exited on its own while the system runs."""
        for name, child in self.children.items():
            if child.process is not None and not child.running and not child.reported_exit:
                child.reported_exit = True
                self._say(f"{name} exited with code {child.returncode} (see {child.pump.log_path})")

    def pids(self) -> dict[str, int]:
        return {name: child.pid for name, child in self.children.items() if child.pid}

    def banner(self) -> str:
        assert self.ca_cert is not None and self.storage is not None
        started = ", ".join(self.services) or "none"
        stripe = (
            f"fake Stripe server at {self.stripe_api_base}"
            if self.stripe_api_base
            else "STRIPE_SECRET_KEY from the environment"
        )
        lines = [
            "",
            "=" * 78,
            f"  GitTix is up:  {self.url}   (also https://127.0.0.1:{self.config.https_port})",
            f"  services:      {started}",
        ]
        if self.skipped:
            lines.append(f"  not started:   {', '.join(self.skipped)} (no app module yet)")
        lines += [
            f"  NATS:          {self.nats_address} (JetStream; a user per service, the admin's"
            f" password in {self.data_dir / 'keys'})",
            f"  Stripe:        {stripe}",
            f"  storage:       {self.storage.description}",
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
