"""The event hop: ticket created → orderable, on an idle system (issue 12, item 6).

The system runs as `make up` runs it (devserver.harness: every service, NATS, Caddy; embedded
store). For each sample, once every consumer has nothing pending and after a random pause (so a
sample falls anywhere in the listeners' fetch cycle and the relay's poll), a seller puts up a
ticket through the HTTPS entry point; from the moment that POST is answered a buyer sends
POST /api/orders for the ticket, again as soon as each 404 (orders has no replica of it yet)
comes back, until one is placed (201). The hop is that time.

Where it goes: this process also listens on the bus (core NATS) for the TicketCreated, so each
sample splits into "answered → on the bus" (the tickets outbox relay: wake-up, read, publish)
and "on the bus → orderable" (orders' consumer: fetch, handler, replica write; then one probe).
`--trace` runs the services with every span exported to a receiver in this process and prints
the slowest samples' spans (POST handled, publish + ack, the orders handling) on one clock.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from bench_tracing import PASSWORD, export_tree, idle
from common.events import TicketCreated
from devserver.harness import RunningSystem, running_system
from devserver.trace_receiver import TraceReceiver, receiving
from nats.aio.msg import Msg

GOAL_P99_MS = 25.0
GOAL_MAX_MS = 100.0
LIMITS = {"ORDERS_MAX_ACTIVE_PER_USER": "100000", "ORDERS_RATE_LIMIT": "100000"}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share + 0.999999) - 1)]


async def measure(system: RunningSystem, samples: int, warmup: int) -> list[dict[str, Any]]:
    seen: dict[str, float] = {}
    event_ids: dict[str, str] = {}
    nc = await nats.connect(system.nats_url)

    async def on_created(msg: Msg) -> None:
        envelope = json.loads(msg.data)
        seen.setdefault(envelope["data"]["id"], time.perf_counter())
        event_ids[envelope["data"]["id"]] = envelope["id"]

    await nc.subscribe(TicketCreated.subject, cb=on_created)
    results: list[dict[str, Any]] = []
    try:
        async with system.client() as seller, system.client() as buyer:
            for http, role in ((seller, "seller"), (buyer, "buyer")):
                email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
                signed_up = await http.post(
                    "/api/users/signup", json={"email": email, "password": PASSWORD}
                )
                assert signed_up.status_code == 201, signed_up.text
            for number in range(warmup + samples):
                await idle(system)
                await asyncio.sleep(random.uniform(0.05, 1.2))
                created = await seller.post(
                    "/api/tickets", json={"title": f"Hop {number}", "price": 10}
                )
                answered, answered_at = time.perf_counter(), time.time_ns()
                assert created.status_code == 201, created.text
                ticket_id = created.json()["id"]
                probes = 0
                while True:
                    probes += 1
                    ordered = await buyer.post("/api/orders", json={"ticketId": ticket_id})
                    if ordered.status_code == 201:
                        break
                    assert ordered.status_code == 404, ordered.text
                    assert time.perf_counter() - answered < 30, "never orderable"
                orderable = time.perf_counter()
                if number < warmup:
                    continue
                on_bus = seen.get(ticket_id, orderable)
                results.append(
                    {
                        "hop_ms": (orderable - answered) * 1000,
                        "to_bus_ms": (on_bus - answered) * 1000,
                        "from_bus_ms": (orderable - on_bus) * 1000,
                        "probes": probes,
                        "event": event_ids.get(ticket_id, ""),
                        "window_ns": (answered_at, time.time_ns()),
                    }
                )
    finally:
        await nc.close()
    return results


def show_spans(receiver: TraceReceiver, slowest: list[dict[str, Any]]) -> None:
    """Every span of every service from the ticket's POST to the order placed, on one clock."""
    spans = receiver.spans()
    for sample in slowest:
        event = str(sample["event"])
        traces = {s.trace_id for s in spans if s.attributes.get("messaging.message.id") == event}
        begin, end = sample["window_ns"]
        begin = min([begin, *(s.start_ns for s in spans if s.trace_id in traces)])
        shown = sorted(
            (s for s in spans if s.trace_id in traces or (s.end_ns > begin and s.start_ns < end)),
            key=lambda s: s.start_ns,
        )
        print(f"  sample {sample['hop_ms']:.1f} ms (event {event}):")
        for span in shown:
            print(
                f"    {(span.start_ns - begin) / 1e6:8.2f} ms +{span.duration_ms:7.2f} ms "
                f"{span.service:11} {span.name}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--trace", action="store_true", help="export spans; show the slowest")
    parser.add_argument("--commit", help="run the services' code of this commit (e.g. a before)")
    args = parser.parse_args()
    env = dict(LIMITS)
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as data, receiving() as receiver:
        if args.commit:
            env["PYTHONPATH"] = export_tree(args.commit, Path(data) / "source")
        if args.trace:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
        with running_system(Path(data), env=env) as system:
            results = asyncio.run(measure(system, args.samples, args.warmup))
            if args.trace:
                time.sleep(6)  # the services' batch span processors export every 5 s
    hops = [r["hop_ms"] for r in results]
    load = os.getloadavg()
    code = f"code of {args.commit}" if args.commit else "this tree"
    print(f"ticket created → orderable, idle system, {code}, {len(hops)} samples", end="")
    print(f" (load {load[0]:.1f})")
    p50, p99, worst = statistics.median(hops), percentile(hops, 0.99), max(hops)
    print(f"  p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal ≤ {GOAL_P99_MS:g}), ", end="")
    print(f"max {worst:.1f} ms (goal ≤ {GOAL_MAX_MS:g})")
    for part in ("to_bus_ms", "from_bus_ms"):
        values = [r[part] for r in results]
        print(
            f"  {part.removesuffix('_ms').replace('_', ' ')}: p50 {statistics.median(values):.1f}"
            f" p99 {percentile(values, 0.99):.1f} max {max(values):.1f} ms"
        )
    slowest = sorted(results, key=lambda r: r["hop_ms"], reverse=True)[:5]
    print(
        "  slowest: "
        + ", ".join(
            f"{r['hop_ms']:.0f} ({r['to_bus_ms']:.0f} to the bus, {r['probes']:.0f} probes)"
            for r in slowest
        )
    )
    if args.trace:
        show_spans(receiver, slowest)
    met = "met" if p99 <= GOAL_P99_MS and worst <= GOAL_MAX_MS else "NOT met"
    print(
        f"  goal: created -> orderable p99 <= {GOAL_P99_MS:g} ms, max <= {GOAL_MAX_MS:g} ms"
        f" -> p99 {p99:.1f} ms, max {worst:.1f} ms ({met}; load {load[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
