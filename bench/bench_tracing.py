"""What observability costs: whole-system CPU per placed order, before it, with tracing off, on.

Starts the system as `make up` runs it (devserver.harness: every service, NATS, localstripe,
Caddy; embedded store) once per variant, one after the other in the same run:

- before: the code of commit --before (default: the parent of the first observability commit),
  exported with `git archive` and put first on PYTHONPATH for every service;
- off:    commit --after (default HEAD), exported the same way, OTEL_EXPORTER_OTLP_ENDPOINT unset
          (metrics and log fields are always on);
- on:     the same, exporting every span (100 % sampling) over OTLP/HTTP to a receiver in this
          process (devserver.trace_receiver; its CPU is not counted: it stands for a collector).

For each: a seller puts up --orders tickets and orders' replica gets them (not measured); then,
measured, one buyer reserves each ticket through the HTTPS entry point, and the run waits until
every consumer of every service has nothing pending. CPU is user + system time of every process
of the system (services, Caddy, NATS; /proc/<pid>/stat), divided by the orders placed: the
issue-12 figure. Rounds alternate the variants (--rounds) so the machine's load hits each alike.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from devserver.harness import RunningSystem, running_system
from devserver.routing import SERVICES
from devserver.trace_receiver import receiving

REPO = Path(__file__).resolve().parents[1]
FIRST_OBSERVABILITY_COMMIT = "08027c8"
PASSWORD = "correct horse battery"
MEMBERS = ["common", "auth", "tickets", "orders", "expiration", "payments", "client"]
LIMITS = {"ORDERS_MAX_ACTIVE_PER_USER": "100000", "ORDERS_RATE_LIMIT": "100000"}


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (uv or a shell may stand between the harness and a process)."""
    found = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            found += tree(int(child))
    return found


async def idle(system: RunningSystem, timeout: float = 120.0) -> None:
    """Until every consumer of every data service has nothing pending or unacknowledged."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            busy = 0
            for service in SERVICES:
                if not service.owns_data:
                    continue
                report = (await http.get(f"{system.service_url(service.name)}/consumers")).json()
                busy += sum(
                    c.get("pending", 1) + c.get("ack_pending", 1) for c in report["consumers"]
                )
            if busy == 0:
                return
            await asyncio.sleep(0.2)
    raise TimeoutError("consumers still busy")


async def place_orders(system: RunningSystem, count: int) -> float:
    """CPU seconds of the whole system to place `count` orders (tickets put up beforehand)."""
    async with system.client() as seller, system.client() as buyer:
        for http, role in ((seller, "seller"), (buyer, "buyer")):
            email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
            signed_up = await http.post(
                "/api/users/signup", json={"email": email, "password": PASSWORD}
            )
            assert signed_up.status_code == 201, signed_up.text
        tickets = []
        for number in range(count):
            sold = await seller.post("/api/tickets", json={"title": f"T{number}", "price": 10})
            assert sold.status_code == 201, sold.text
            tickets.append(sold.json()["id"])
        await idle(system)
        pids = [p for pid in system.system.pids().values() for p in tree(pid)]
        before = cpu_seconds(pids)
        for ticket_id in tickets:
            reserved = await buyer.post("/api/orders", json={"ticketId": ticket_id})
            assert reserved.status_code == 201, reserved.text
        await idle(system)
        return cpu_seconds(pids) - before


def export_tree(commit: str, into: Path) -> str:
    """The services' sources at `commit`, as a PYTHONPATH that shadows this checkout's."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", commit], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return os.pathsep.join(str(into / member / "src") for member in MEMBERS)


def run_variant(name: str, orders: int, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory(prefix=f"bench-tracing-{name}-") as data:
        with running_system(Path(data), env={**LIMITS, **env}) as system:
            return asyncio.run(place_orders(system, orders)) / orders


# What one placed order runs through the always-on instrumentation: its POST /api/orders, the
# relay publishing OrderCreated and then TicketUpdated, and four handlings (OrderCreated in
# tickets, expiration and payments; TicketUpdated in orders).
PER_ORDER = {"request": 1, "publish": 2, "handle": 4}


def instrumentation_cost_us(repeat: int = 20000) -> dict[str, float]:
    """Microseconds of this process's CPU per call of each instrumented path with tracing off:
    exactly the calls common.metrics, common.logging and common.telemetry add to a request, a
    publish and a handling (the work they wrap is not run)."""
    from common.logging import bind, event_fields, log_context
    from common.metrics import (
        EVENT_HANDLING_DURATION,
        EVENTS_HANDLED,
        EVENTS_PUBLISHED,
        HTTP_DURATION,
        HTTP_REQUESTS,
    )
    from opentelemetry.trace import SpanKind

    from common import telemetry

    assert not telemetry.tracing_enabled()
    data = {"id": "o1", "userId": "u1", "ticket": {"id": "t1", "price": 10}}
    headers = {"Nats-Msg-Id": "e1"}

    def request() -> None:
        started = time.perf_counter()
        with log_context():
            telemetry.current_carrier()  # the outbox entry's
        route = "/api/orders"
        HTTP_REQUESTS.labels("POST", route, "201").inc()
        HTTP_DURATION.labels("POST", route).observe(time.perf_counter() - started)

    def publish() -> None:
        with telemetry.span("publish s", kind=SpanKind.PRODUCER, parent=None, attributes={}):
            {"Nats-Msg-Id": "e1", **telemetry.current_carrier()}
        EVENTS_PUBLISHED.labels("OrderCreated", "stored").inc()

    def handle() -> None:
        started = time.perf_counter()
        with (
            log_context(event_id=headers.get("Nats-Msg-Id"), consumer="c"),
            telemetry.span("process s", kind=SpanKind.CONSUMER, parent=headers) as current,
        ):
            bind(**event_fields("OrderCreated", data))
            current.set_attribute("gittix.outcome", "acked")
        EVENT_HANDLING_DURATION.labels("c").observe(time.perf_counter() - started)
        EVENTS_HANDLED.labels("c", "OrderCreated", "acked").inc()

    costs = {}
    for name, call in (("request", request), ("publish", publish), ("handle", handle)):
        for _ in range(1000):
            call()
        started = time.process_time()
        for _ in range(repeat):
            call()
        costs[name] = (time.process_time() - started) / repeat * 1e6
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", default=f"{FIRST_OBSERVABILITY_COMMIT}^")
    parser.add_argument("--after", default="HEAD", help="the commit measured off and on")
    parser.add_argument(
        "--instrumentation-only", action="store_true", help="only the in-process cost per call"
    )
    args = parser.parse_args()
    if args.instrumentation_only:
        costs = instrumentation_cost_us()
        per_order = sum(costs[name] * count for name, count in PER_ORDER.items())
        print(", ".join(f"{name} {cost:.1f} µs" for name, cost in costs.items()))
        print(f"per placed order (x{PER_ORDER}): {per_order:.0f} µs")
        return 0
    results: dict[str, list[float]] = {"before": [], "off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-tracing-src-") as source, receiving() as rx:
        old_path = export_tree(args.before, Path(source) / "before")
        new_path = export_tree(args.after, Path(source) / "after")
        variants: dict[str, dict[str, Any]] = {
            "before": {"PYTHONPATH": old_path},
            "off": {"PYTHONPATH": new_path},
            "on": {"PYTHONPATH": new_path, "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url},
        }
        for round_number in range(args.rounds):
            for name, env in variants.items():
                per_order = run_variant(name, args.orders, env)
                results[name].append(per_order)
                print(f"round {round_number + 1} {name:6} {per_order * 1000:7.2f} ms CPU/order")
        spans = len(rx.spans())
    load = os.getloadavg()
    print(f"\n{args.orders} orders per run, {args.rounds} rounds; load average {load[0]:.1f}")
    base = statistics.median(results["before"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"{name:6} median {median * 1000:7.2f} ms CPU/order ({median / base:5.2f}x before)")
    print(f"spans received with tracing on: {spans}")
    costs = instrumentation_cost_us()
    per_order = sum(costs[name] * count for name, count in PER_ORDER.items())
    share = per_order / (statistics.median(results["off"]) * 1e6) * 100
    print(
        "tracing off, instrumentation alone: "
        + ", ".join(f"{name} {cost:.1f} µs" for name, cost in costs.items())
        + f"; per order {per_order:.0f} µs = {share:.2f} % of the off median"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
