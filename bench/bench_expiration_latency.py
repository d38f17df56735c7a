"""How late OrderExpired is: its arrival on the bus minus the order's expiresAt.

Runs the expiration service in this process (its real app: listeners, scheduler, outbox relay)
on a real nats-server and the embedded store `make up` uses, first arms `--pending` timers due
in an hour (they only sit there), then publishes OrderCreated events whose expiresAt lie ahead
(`--burst` of them sharing one expiresAt `--lead` seconds ahead, `--spread` more at random over
1-6 s), and records when each OrderExpired reaches a subscriber (a process of its own, as the
services hearing it are). The goal: every one within 1 second of its expiresAt (p100), none
early. The issue's burst: --burst 2000 --spread 0 --pending 10000 --lead 15.
"""

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from bson import ObjectId
from common.events import OrderCreated, OrderExpired, TicketPriceRef, parse_envelope
from common.messaging import STREAM_NAME, Publisher, ensure_stream
from common.types import utc_now
from expiration.app import create_app
from gittix_testing import running, start_nats_server, wait_until
from gittix_testing.keys import signing_key_pair
from nats.aio.msg import Msg
from nats.js import JetStreamContext


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def order_created(expires_at: Any) -> OrderCreated:
    return OrderCreated(
        id=str(ObjectId()),
        version=0,
        status="created",
        user_id=str(ObjectId()),
        expires_at=expires_at,
        ticket=TicketPriceRef(id=str(ObjectId()), price=Decimal("10")),
    )


async def publish_all(publisher: Publisher, events: list[OrderCreated]) -> None:
    for start in range(0, len(events), 200):
        await asyncio.gather(*(publisher.publish(event) for event in events[start : start + 200]))


async def measure(nats_url: str, args: argparse.Namespace) -> tuple[list[float], float]:
    """Each OrderExpired's lateness in seconds, and this process's CPU seconds during the burst."""
    os.environ.update(
        {"NATS_URL": nats_url, "JWT_PUBLIC_KEY": signing_key_pair()[1], "LOG_LEVEL": "WARNING"}
    )
    os.environ.pop("MONGO_URL", None)  # the embedded store, as make up runs it
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    due: dict[str, float] = {}
    expected = args.burst + args.spread
    # The subscriber is a process of its own, as the services hearing OrderExpired are: its
    # work does not share the expiration service's event loop.
    recorder = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--record-arrivals",
        nats_url,
        str(expected),
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,  # the arrivals come as one JSON line
    )
    try:
        assert recorder.stdout is not None
        ready = await asyncio.wait_for(recorder.stdout.readline(), timeout=60)
        if ready.strip() != b"ready":
            raise RuntimeError(f"the OrderExpired recorder did not start: {ready!r}")
        cpu, arrivals = await run_burst(js, args, due, recorder.stdout)
    finally:
        if recorder.returncode is None:
            recorder.kill()
        await recorder.wait()
    await nc.close()
    return [arrivals[order_id] - due[order_id] for order_id in due], cpu


async def run_burst(
    js: JetStreamContext,
    args: argparse.Namespace,
    due: dict[str, float],
    recorded: asyncio.StreamReader,
) -> tuple[float, dict[str, float]]:
    """Arm the timers, let the burst fall due, and read the recorder's arrival times."""
    expected = args.burst + args.spread
    async with running(create_app()) as app:
        database = app.state.db
        publisher = Publisher(js)

        async def armed(count: int) -> bool:
            return bool(await database.expirations.count_documents({}) >= count)

        far = utc_now() + timedelta(hours=1)
        await publish_all(publisher, [order_created(far) for _ in range(args.pending)])
        await wait_until(
            lambda: armed(args.pending), timeout=600, message="pending timers not armed"
        )
        start = utc_now()
        burst_at = start + timedelta(seconds=args.lead)
        moments = [burst_at] * args.burst + [
            start + timedelta(seconds=random.uniform(1, 6)) for _ in range(args.spread)
        ]
        events = [order_created(expires_at) for expires_at in moments]
        for event in events:
            due[event.id] = event.expires_at.timestamp()
        await publish_all(publisher, events)
        await wait_until(
            lambda: armed(args.pending + expected), timeout=600, message="timers not armed"
        )
        if utc_now() > burst_at:
            print(f"  warning: the burst was armed {utc_now() - burst_at} after its due time")
        # The burst's cost: from just before it falls due until its last OrderExpired arrives.
        await asyncio.sleep(max((burst_at - utc_now()).total_seconds() - 0.2, 0.0))
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        cpu_before = time.process_time()
        line = await asyncio.wait_for(recorded.readline(), timeout=120)
        cpu = time.process_time() - cpu_before
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    arrivals: dict[str, float] = json.loads(line)
    return cpu, arrivals


async def record_arrivals(nats_url: str, expected: int) -> None:
    """The recorder process: prints `ready` once subscribed, then, when `expected` OrderExpired
    have arrived, one JSON line {order id: arrival time}. Stops by itself after 10 minutes."""
    nc = await nats.connect(nats_url)
    arrivals: dict[str, float] = {}
    done = asyncio.Event()

    async def on_expired(msg: Msg) -> None:
        arrived = utc_now().timestamp()
        _, event = parse_envelope(msg.data)
        assert isinstance(event, OrderExpired)
        arrivals[event.order_id] = arrived
        if len(arrivals) == expected:
            done.set()

    await nc.jetstream().subscribe(
        OrderExpired.subject, stream=STREAM_NAME, cb=on_expired, ordered_consumer=True
    )
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await nc.close()
    print(json.dumps(arrivals), flush=True)


def main() -> int:
    if sys.argv[1:2] == ["--record-arrivals"]:
        asyncio.run(record_arrivals(sys.argv[2], int(sys.argv[3])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=50, help="orders due at the same instant")
    parser.add_argument("--spread", type=int, default=150, help="orders due at random in 1-6 s")
    parser.add_argument("--pending", type=int, default=0, help="timers due in an hour")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds until the burst is due")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the burst (until its last OrderExpired) to FILE"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gittix-bench-nats-") as store:
        server = start_nats_server(Path(store))
        try:
            late, cpu = asyncio.run(measure(f"nats://127.0.0.1:{server.port}", args))
        finally:
            server.stop()
    millis = [value * 1000 for value in late]
    print(
        f"OrderExpired arrival minus expiresAt, {len(millis)} orders "
        f"({args.burst} due at the same instant, {args.spread} spread over 1-6 s, "
        f"{args.pending} more pending):"
    )
    print(
        f"  min {min(millis):7.1f} ms   p50 {statistics.median(millis):7.1f} ms   "
        f"p95 {percentile(millis, 0.95):7.1f} ms   p99 {percentile(millis, 0.99):7.1f} ms   "
        f"max {max(millis):7.1f} ms"
    )
    print(
        f"  CPU of the service's process from 0.2 s before the burst until its last "
        f"OrderExpired arrived: {cpu * 1000:.0f} ms"
        + (f", {cpu * 1000 / len(millis):.2f} ms per expiry" if not args.spread else "")
        + f"; load average {os.getloadavg()[0]:.1f}"
    )
    early = [value for value in millis if value < 0]
    print(f"  fired early: {len(early)}   later than 1 s: {sum(1 for v in millis if v > 1000)}")
    print(f"  goal: max <= 1000 ms, none early -> max {max(millis):.0f} ms, {len(early)} early")
    return 0 if not early and max(millis) <= 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
