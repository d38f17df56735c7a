"""Structured logging: one JSON object a line, carrying the service name, the trace and span
ids of the request or handler it is written in, and the ids of what that work concerns."""

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from common.types import format_utc, utc_now

# The entity ids (order_id, ticket_id, charge_id, user_id, event_id...) of the request or
# handler running in this task; every line logged inside it carries them.
_bound: ContextVar[Mapping[str, Any] | None] = ContextVar("log_fields", default=None)
# The ASGI scope of the request running in this task: the router writes its path parameters
# (order_id, ticket_id) into it once matched, after the request's context was entered.
_request_scope: ContextVar[Mapping[str, Any] | None] = ContextVar("log_scope", default=None)


class RequestLogContext:
    """ASGI middleware: lines logged while a request runs carry its path's entity ids."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _request_scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_scope.reset(token)


def _path_ids() -> dict[str, Any]:
    scope = _request_scope.get()
    params = (scope or {}).get("path_params") or {}
    return {name: value for name, value in params.items() if name.endswith("_id")}


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block carries `fields` (None values are left out)."""
    token = _bound.set(
        {**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    )
    try:
        yield
    finally:
        _bound.reset(token)


def bind(**fields: Any) -> None:
    """Add `fields` to the lines logged from here to the end of the current log_context."""
    _bound.set({**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


# An event's `id` names a different entity per event family (OrderCreated's is the order's).
_ENTITY_OF_TYPE = {
    "Order": "order_id",
    "Ticket": "ticket_id",
    "Charge": "charge_id",
    "User": "user_id",
}
_ENTITY_FIELDS = {"orderId": "order_id", "ticketId": "ticket_id", "userId": "user_id"}


def event_fields(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The entity ids an event's data names, as log fields."""
    fields: dict[str, Any] = {}
    for prefix, name in _ENTITY_OF_TYPE.items():
        if event_type.startswith(prefix) and "id" in data:
            fields[name] = data["id"]
    for key, name in _ENTITY_FIELDS.items():
        if data.get(key):
            fields.setdefault(name, data[key])
    ticket = data.get("ticket")
    if isinstance(ticket, Mapping) and "id" in ticket:
        fields.setdefault("ticket_id", ticket["id"])
    return fields


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": format_utc(utc_now()),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        entry.update(_path_ids())
        entry.update(_bound.get() or {})
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log line to stderr as JSON with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel("WARNING")
