"""What a write costs as the data grows: CPU per ticket created / edited with N tickets stored.

Runs the tickets service in this process (its real app: routes, outbox, relay, listeners) on
the embedded store `make up` uses and a real nats-server, stores N tickets (written straight
into the database, as the service stores them), then creates `--writes` tickets and edits as
many through the HTTP routes (httpx's ASGI transport, no network), and waits until every
TicketCreated / TicketUpdated is on the stream, then times 50 GET /api/tickets (its first
page, after one that is not timed: wall-time p50, and CPU per request). CPU is this process's
(service, relay and client); the figure is CPU per write, event published included. The goals
(issue 12): a write at 10,000 tickets within 1.3x its cost at 100; the list's p50 at 10,000
within 1.5x its p50 at 100. The issue's sizes: --sizes 100,10000.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
from bson import ObjectId
from common.auth import SESSION_COOKIE, sign_session
from common.events import TicketCreated, TicketUpdated
from common.messaging import STREAM_NAME, ensure_stream
from common.types import utc_now
from gittix_testing import http_client, running, start_nats_server, wait_until
from gittix_testing.keys import signing_key_pair
from tickets.app import create_app

SELLER = "64b000000000000000000001"


def stored_ticket(number: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "title": f"Stored {number}",
        "price_cents": 1000,
        "user_id": SELLER,
        "order_id": None,
        "version": 0,
        "created_at": utc_now() - timedelta(seconds=number),
        "released_order_ids": [],
        "outbox": [],
    }


async def measure(nats_url: str, size: int, writes: int) -> dict[str, float]:
    private, public = signing_key_pair()
    os.environ.update({"NATS_URL": nats_url, "JWT_PUBLIC_KEY": public, "LOG_LEVEL": "WARNING"})
    os.environ.pop("MONGO_URL", None)  # the embedded store, as make up runs it
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for stream in (STREAM_NAME,):
        try:
            await js.delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
    await ensure_stream(js)
    seen = {"created": 0, "updated": 0}

    async def on_event(msg: Any) -> None:
        seen["created" if msg.subject == TicketCreated.subject else "updated"] += 1

    await js.subscribe(TicketCreated.subject, cb=on_event, ordered_consumer=True)
    await js.subscribe(TicketUpdated.subject, cb=on_event, ordered_consumer=True)
    cookie = {
        SESSION_COOKIE: sign_session(user_id=SELLER, email="s@example.com", private_key=private)
    }
    figures: dict[str, float] = {}
    async with running(create_app()) as app, http_client(app) as client:
        db = app.state.db
        for start in range(0, size, 1000):
            await db.tickets.insert_many(
                [stored_ticket(n) for n in range(start, min(size, start + 1000))]
            )
        body = {"title": "Bench", "price": 12.5}
        for _ in range(10):  # warm-up
            assert (await client.post("/api/tickets", json=body, cookies=cookie)).is_success

        async def published(kind: str, count: int) -> bool:
            return seen[kind] >= count

        await wait_until(lambda: published("created", 10), timeout=60, message="warm-up")
        ids = []
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(writes):
            response = await client.post("/api/tickets", json=body, cookies=cookie)
            ids.append(response.json()["id"])
        await wait_until(lambda: published("created", 10 + writes), timeout=600, message="created")
        figures["create"] = (time.process_time() - cpu) / writes * 1000
        figures["create wall"] = (time.perf_counter() - wall) / writes * 1000
        cpu, wall = time.process_time(), time.perf_counter()
        for ticket_id in ids:
            edit = {"title": "Bench", "price": 13}
            response = await client.put(f"/api/tickets/{ticket_id}", json=edit, cookies=cookie)
            assert response.is_success, response.text
        await wait_until(lambda: published("updated", writes), timeout=600, message="updated")
        figures["edit"] = (time.process_time() - cpu) / writes * 1000
        figures["edit wall"] = (time.perf_counter() - wall) / writes * 1000
        # The first sorted read after a start orders the store once (common.embedded_store).
        assert (await client.get("/api/tickets")).is_success
        latencies = []
        cpu = time.process_time()
        for _ in range(50):
            started = time.perf_counter()
            assert (await client.get("/api/tickets")).is_success
            latencies.append((time.perf_counter() - started) * 1000)
        figures["list p50"] = statistics.median(latencies)
        # On a shared machine the wall time is mostly waiting for a core; CPU is steadier.
        figures["list cpu"] = (time.process_time() - cpu) / 50 * 1000
    await nc.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,2000", help="tickets stored, comma-separated")
    parser.add_argument("--writes", type=int, default=100, help="creates (and as many edits)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="gittix-bench-nats-") as store:
        server = start_nats_server(Path(store))
        try:
            for size in sizes:
                url = f"nats://127.0.0.1:{server.port}"
                results[size] = asyncio.run(measure(url, size, args.writes))
        finally:
            server.stop()
    print(f"CPU per write through the tickets service ({args.writes} creates, {args.writes} edits)")
    print(
        "  tickets stored | create CPU ms | edit CPU ms | create wall ms | edit wall ms"
        " | GET /api/tickets p50 ms | its CPU ms"
    )
    for size, figure in results.items():
        print(
            f"  {size:14,} | {figure['create']:13.2f} | {figure['edit']:11.2f} | "
            f"{figure['create wall']:14.2f} | {figure['edit wall']:12.2f} | "
            f"{figure['list p50']:23.2f} | {figure['list cpu']:10.2f}"
        )
    smallest, largest = results[sizes[0]], results[sizes[-1]]
    for kind in ("create", "edit"):
        ratio = largest[kind] / smallest[kind]
        print(f"  goal: {kind} at {sizes[-1]:,} <= 1.3x at {sizes[0]:,} -> {ratio:.2f}x")
    ratio = largest["list p50"] / smallest["list p50"]
    print(f"  goal: GET /api/tickets p50 at {sizes[-1]:,} <= 1.5x at {sizes[0]:,} -> {ratio:.2f}x")
    ratio = largest["list cpu"] / smallest["list cpu"]
    print(f"        (its CPU at {sizes[-1]:,}: {ratio:.2f}x the CPU at {sizes[0]:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
