"""A small OTLP/HTTP trace receiver and a readable rendering of one trace (`make trace`, e2e).

The services export their spans over OTLP/HTTP (protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT is
set; this receiver takes them on 127.0.0.1 with the official protobuf definitions
(opentelemetry-proto), keeps them in memory and can render a trace as a tree: service, span,
start offset and duration. It stands in for a collector on a laptop, not in production.
"""

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

# OTLP's SpanKind numbers, as a person reads them.
KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    error: bool = False

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP/HTTP protobuf export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = str(resource.get("service.name", "?"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        # STATUS_CODE_ERROR
                        error=span.status.code == 2,
                    )
                )
    return spans


class TraceReceiver:
    """Spans received so far (thread-safe: the HTTP server adds them from its own threads)."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self.url = ""

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def spans(self, trace_id: str | None = None) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if trace_id is None or s.trace_id == trace_id]


def _handler(receiver: TraceReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                receiver.add(decode(body))
            except Exception:
                self.send_error(400, "not an OTLP protobuf trace export")
                return
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would bury the output

    return Handler


@contextmanager
def receiving(port: int = 0) -> Iterator[TraceReceiver]:
    """Receive OTLP/HTTP traces on 127.0.0.1:`port` (0: any free port) until the block ends;
    `receiver.url` is what OTEL_EXPORTER_OTLP_ENDPOINT should be."""
    receiver = TraceReceiver()
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="otlp-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def render(spans: list[ReceivedSpan]) -> str:
    """One trace as a tree: each span under its parent, by start time, with its service, its
    kind, when it started after the trace began and how long it took."""
    if not spans:
        return "(no spans)"
    by_id = {s.span_id: s for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    roots = []
    for span in spans:
        if span.parent_id and span.parent_id in by_id:
            children.setdefault(span.parent_id, []).append(span)
        else:
            roots.append(span)
    origin = min(s.start_ns for s in spans)
    lines = [f"trace {spans[0].trace_id}: {len(spans)} spans, {len(services(spans))} services"]

    def walk(span: ReceivedSpan, depth: int) -> None:
        offset = (span.start_ns - origin) / 1e6
        mark = "  !" if span.error else ""
        lines.append(
            f"{offset:9.1f} ms {span.duration_ms:8.1f} ms  {'  ' * depth}"
            f"[{span.service}] {span.name} ({span.kind}){mark}"
        )
        for child in sorted(children.get(span.span_id, []), key=lambda s: s.start_ns):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda s: s.start_ns):
        walk(root, 0)
    return "\n".join(lines)


def services(spans: list[ReceivedSpan]) -> set[str]:
    return {s.service for s in spans}
