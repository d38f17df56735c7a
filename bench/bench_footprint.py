"""Each service's memory and CPU under a small order load: the inputs of the production overlay's
resource requests (infra/overlays/production) and of docs/capacity.md.

The whole system runs as `make up` runs it (devserver.harness: every service a uvicorn process,
the Caddy entry point, a real nats-server), with the databases in gittix_testing.mongo_server
(MONGO_URL), so each service talks to its database through PyMongo over the wire as in
production and its own CPU and memory do not include an in-process store. Buyers place orders on
a seller's tickets through the HTTPS entry point at a fixed offered rate; the orders expire
(ORDER_EXPIRATION_SECONDS), so expiration fires, tickets are released, and every listener works.

Per process: resident memory (VmRSS) after start and after the load, peak (VmHWM), and CPU time
(user + system, /proc/<pid>/stat) spent during the load divided by the orders placed; plus the
events the stream took per order. Figures, not pass/fail: it exits non-zero only if the system
does not do the work (an order refused, an expiry never arriving).
"""

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from common.messaging import STREAM_NAME
from devserver.harness import RunningSystem, free_ports, running_system
from gittix_testing import wait_until
from gittix_testing.mongo_server import COUNTS_COMMAND
from gittix_testing.processes import ManagedProcess, memory_mib
from pymongo import AsyncMongoClient

PASSWORD = "correct horse battery staple"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def service_pids(system: RunningSystem) -> dict[str, int]:
    """The process doing each service's work (uvicorn), and the entry point's."""
    return {name: pid for name, pid in system.system.pids().items()}


async def stream_messages(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(STREAM_NAME)
        return int(info.state.messages)
    finally:
        await nc.close()


async def command_counts(mongo_url: str) -> Counter[tuple[str, str]]:
    """How many of each command the stand-in database has run, per database (service)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        reply = await client.admin.command(COUNTS_COMMAND)
    finally:
        await client.close()
    return Counter({(c["db"], c["command"]): c["n"] for c in reply["counts"]})


async def sign_up(system: RunningSystem, email: str) -> httpx.AsyncClient:
    http = system.client()
    response = await http.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    return http


async def load(
    system: RunningSystem, mongo_url: str, *, orders: int, rate: float, buyers: int
) -> dict[str, Any]:
    seller = await sign_up(system, "seller@bench.example")
    clients = [await sign_up(system, f"buyer{i}@bench.example") for i in range(buyers)]
    ticket_ids = []
    for i in range(orders):
        response = await seller.post("/api/tickets", json={"title": f"Seat {i}", "price": 25})
        response.raise_for_status()
        ticket_ids.append(response.json()["id"])

    async def orderable(ticket_id: str) -> bool:
        return (await clients[0].get(f"/api/tickets/{ticket_id}")).status_code == 200

    # Orders' replica of the last ticket must exist before buying it: wait for the event hop.
    await wait_until(
        lambda: orderable(ticket_ids[-1]),
        timeout=30,
        interval=0.1,
        message="the last ticket never became visible",
    )
    await asyncio.sleep(1.0)  # let the replica catch up behind it

    pids = service_pids(system)
    before_cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    counts_before = await command_counts(mongo_url)
    load_started = time.monotonic()
    before_events = await stream_messages(system.nats_url)
    latencies: list[float] = []
    refused: list[str] = []

    async def place(i: int) -> None:
        http = clients[i % buyers]
        started = time.perf_counter()
        for _attempt in range(50):
            response = await http.post("/api/orders", json={"ticketId": ticket_ids[i]})
            if response.status_code == 201:
                latencies.append(time.perf_counter() - started)
                return
            if response.status_code != 404:  # 404: the replica has not caught up yet
                break
            await asyncio.sleep(0.1)
        refused.append(f"{response.status_code} {response.text[:120]}")

    started = time.perf_counter()
    tasks = []
    for i in range(orders):
        due = started + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(place(i)))
    await asyncio.gather(*tasks)
    placed_seconds = time.perf_counter() - started
    return {
        "pids": pids,
        "before_cpu": before_cpu,
        "counts_before": counts_before,
        "load_started": load_started,
        "before_events": before_events,
        "latencies": sorted(latencies),
        "refused": refused,
        "placed_seconds": placed_seconds,
        "clients": [seller, *clients],
    }


async def wait_for_expiries(system: RunningSystem, expected_events: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        count = await stream_messages(system.nats_url)
        if count >= expected_events or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.5)


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    load1 = os.getloadavg()[0]
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, load average {load1:.1f} at the end"
    )


async def measure(system: RunningSystem, store: ManagedProcess, args: argparse.Namespace) -> int:
    pids = service_pids(system)
    idle = {name: memory_mib(pid)[0] for name, pid in pids.items()}
    # What each process spends doing nothing (listeners' fetches, the expiry poll, the relay's
    # sweep, NATS answering them): subtracted below, so the per-order figure is the marginal one.
    idle_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    await asyncio.sleep(args.idle_seconds)
    idle_rate = {
        name: (cpu_seconds(pid) - idle_start[name]) / args.idle_seconds
        for name, pid in pids.items()
    }
    mongo_url = f"mongodb://127.0.0.1:{store.port}/"
    result = await load(system, mongo_url, orders=args.orders, rate=args.rate, buyers=args.buyers)
    # Every order expires: OrderCreated, TicketUpdated (reserved), OrderExpired, OrderCancelled,
    # TicketUpdated (released); the CPU counted is the whole life of the orders, so wait for it.
    await wait_for_expiries(
        system, result["before_events"] + 5 * len(result["latencies"]), args.expire + 120
    )
    events_now = await stream_messages(system.nats_url)
    counts = await command_counts(mongo_url)
    counts.subtract(result["counts_before"])
    elapsed = time.monotonic() - result["load_started"]
    for http in result["clients"]:
        await http.aclose()
    placed = len(result["latencies"])
    print(f"machine: {machine()}")
    print(
        f"offered {args.rate:g} orders/s, placed {placed} of {args.orders} in "
        f"{result['placed_seconds']:.1f} s; refused {len(result['refused'])}"
    )
    lat = result["latencies"]
    if lat:
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"POST /api/orders latency: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    events = events_now - result["before_events"]
    print(
        "events on the stream per order (placed, reserved, expired, cancelled, released): "
        f"{events / max(placed, 1):.2f}"
    )
    print()
    print(f"from the first order to the last event: {elapsed:.1f} s")
    print()
    print(
        "| process | RSS idle MiB | RSS after MiB | peak RSS MiB | idle CPU % | "
        "CPU ms/order, all | CPU ms/order, over idle |"
    )
    print("|---|---|---|---|---|---|---|")
    total = marginal_total = 0.0
    for name, pid in sorted(result["pids"].items()):
        rss, peak = memory_mib(pid)
        spent = cpu_seconds(pid) - result["before_cpu"][name]
        marginal = max(0.0, spent - idle_rate[name] * elapsed)
        total += spent
        marginal_total += marginal
        print(
            f"| {name} | {idle[name]:.0f} | {rss:.0f} | {peak:.0f} | {idle_rate[name] * 100:.1f} "
            f"| {spent * 1000 / max(placed, 1):.2f} | {marginal * 1000 / max(placed, 1):.2f} |"
        )
    print(
        f"| all of the above | | | | | {total * 1000 / max(placed, 1):.2f} "
        f"| {marginal_total * 1000 / max(placed, 1):.2f} |"
    )
    print()
    print("database commands per order (round trips to MongoDB; setup before the load excluded):")
    print()
    print("| database | command | per order |")
    print("|---|---|---|")
    for (database, command), n in sorted(counts.items()):
        if n > 0 and database != "admin":
            print(f"| {database} | {command} | {n / max(placed, 1):.2f} |")
    if store.process is not None:
        spent = cpu_seconds(store.process.pid)
        print(f"(the stand-in database process, mongomock: {spent:.1f} s CPU in all)")
    for line in result["refused"][:5]:
        print("refused:", line)
    return 1 if result["refused"] or placed == 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="orders to place (default 300)")
    parser.add_argument("--rate", type=float, default=20.0, help="offered orders/s (default 20)")
    parser.add_argument("--buyers", type=int, default=10, help="buyers (default 10)")
    parser.add_argument("--expire", type=int, default=10, help="ORDER_EXPIRATION_SECONDS")
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle CPU measured over (default 10)"
    )
    args = parser.parse_args()
    (mongo_port,) = free_ports(1)
    store = ManagedProcess(
        "mongo",
        [sys.executable, "-m", "gittix_testing.mongo_server", "--port", str(mongo_port)],
        port=mongo_port,
    )
    env = {
        "MONGO_URL": f"mongodb://127.0.0.1:{mongo_port}/",
        "ORDER_EXPIRATION_SECONDS": str(args.expire),
        # The bench's buyers place many orders each; the abuse limits would refuse them.
        "ORDERS_MAX_ACTIVE_PER_USER": str(args.orders),
        "ORDERS_RATE_LIMIT": str(args.orders * 10),
        # All of them sign up from this one client, which auth would throttle.
        "SIGNUP_CLIENT_LIMIT": str(args.buyers * 10),
    }
    with (
        store,
        tempfile.TemporaryDirectory(prefix="gittix-footprint-") as data,
        running_system(Path(data), env=env) as system,
    ):
        return asyncio.run(measure(system, store, args))


if __name__ == "__main__":
    sys.exit(main())
