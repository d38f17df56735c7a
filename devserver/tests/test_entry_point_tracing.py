"""The entry point traces requests only when the services do (OTEL_EXPORTER_OTLP_ENDPOINT)."""

from pathlib import Path

from devserver.entry_point import caddy_config, caddy_env

UPSTREAMS = {"auth": 4001, "tickets": 4002, "orders": 4003, "payments": 4005, "client": 4000}


def handlers(config: dict) -> list[str]:  # type: ignore[type-arg]
    routes = config["apps"]["http"]["servers"]["entry"]["routes"]
    return [handler["handler"] for route in routes for handler in route["handle"]]


def test_tracing_off_adds_no_handler_and_no_exporter(tmp_path: Path) -> None:
    config = caddy_config(port=8443, upstreams=UPSTREAMS, cert=None, key=None, storage=tmp_path)
    assert "tracing" not in handlers(config)
    assert not [name for name in caddy_env(tmp_path) if name.startswith("OTEL_")]


def test_tracing_on_names_each_span_by_route_and_exports_over_otlp_http(tmp_path: Path) -> None:
    config = caddy_config(
        port=8443, upstreams=UPSTREAMS, cert=None, key=None, storage=tmp_path, tracing=True
    )
    routes = config["apps"]["http"]["servers"]["entry"]["routes"]
    spans = {
        route["handle"][0]["span"] for route in routes if route["handle"][0]["handler"] == "tracing"
    }
    assert spans == {
        "entry /api/users",
        "entry /api/tickets",
        "entry /api/orders",
        "entry /api/payments",
        "entry /",
    }
    env = caddy_env(tmp_path, "http://127.0.0.1:4318")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
