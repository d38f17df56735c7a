"""How late OrderExpired is: its arrival on the bus minus the order's expiresAt.

Runs the expiration service in this process (its real app: listeners, scheduler, outbox relay)
on a real nats-server and the embedded store, publishes OrderCreated events whose expiresAt
lie 1-6 s ahead (one batch of 50 sharing one expiresAt, the rest spread out), and records when
each OrderExpired reaches a subscriber. The requirement: within 1 second of expiresAt.
"""

import asyncio
import os
import random
import statistics
import sys
import tempfile
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from bson import ObjectId
from common.events import OrderCreated, OrderExpired, TicketPriceRef, parse_envelope
from common.messaging import STREAM_NAME, Publisher, ensure_stream
from common.types import utc_now
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from expiration.app import create_app
from gittix_testing import running, start_nats_server
from mongomock_motor import AsyncMongoMockClient

SPREAD_ORDERS = 150
BATCH_ORDERS = 50


def public_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(nats_url: str) -> list[float]:
    os.environ.update(
        {"NATS_URL": nats_url, "JWT_PUBLIC_KEY": public_key(), "LOG_LEVEL": "WARNING"}
    )
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js)
    due: dict[str, float] = {}
    late: dict[str, float] = {}
    done = asyncio.Event()

    async def on_expired(msg: object) -> None:
        arrived = utc_now()
        _, event = parse_envelope(msg.data)  # type: ignore[attr-defined]
        assert isinstance(event, OrderExpired)
        late[event.order_id] = arrived.timestamp() - due[event.order_id]
        if len(late) == SPREAD_ORDERS + BATCH_ORDERS:
            done.set()

    await js.subscribe(
        OrderExpired.subject, stream=STREAM_NAME, cb=on_expired, ordered_consumer=True
    )
    database: Any = AsyncMongoMockClient(tz_aware=True)["bench_expiration"]
    async with running(create_app(database=database)):
        publisher = Publisher(js)
        start = utc_now()
        batch_at = start + timedelta(seconds=3)
        moments = [batch_at] * BATCH_ORDERS + [
            start + timedelta(seconds=random.uniform(1, 6)) for _ in range(SPREAD_ORDERS)
        ]
        for expires_at in moments:
            order_id = str(ObjectId())
            due[order_id] = expires_at.timestamp()
            await publisher.publish(
                OrderCreated(
                    id=order_id,
                    version=0,
                    status="created",
                    user_id=str(ObjectId()),
                    expires_at=expires_at,
                    ticket=TicketPriceRef(id=str(ObjectId()), price=Decimal("10")),
                )
            )
        await asyncio.wait_for(done.wait(), timeout=30)
    await nc.close()
    return list(late.values())


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gittix-bench-nats-") as store:
        server = start_nats_server(Path(store))
        try:
            late = asyncio.run(measure(f"nats://127.0.0.1:{server.port}"))
        finally:
            server.stop()
    millis = [value * 1000 for value in late]
    print(
        f"OrderExpired arrival minus expiresAt, {len(millis)} orders "
        f"({BATCH_ORDERS} due at the same instant, {SPREAD_ORDERS} spread over 1-6 s):"
    )
    print(
        f"  min {min(millis):7.1f} ms   p50 {statistics.median(millis):7.1f} ms   "
        f"p95 {percentile(millis, 0.95):7.1f} ms   p99 {percentile(millis, 0.99):7.1f} ms   "
        f"max {max(millis):7.1f} ms"
    )
    early = [value for value in millis if value < 0]
    print(f"  fired early: {len(early)}   later than 1 s: {sum(1 for v in millis if v > 1000)}")
    return 0 if not early and max(millis) <= 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
