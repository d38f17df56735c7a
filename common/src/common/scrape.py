"""What GET /metrics reads when scraped: the outbox backlog and the consumers' lag.

Apart from common.metrics (which defines the metrics and is imported by the messaging layer),
since reading them needs the outbox and the consumers, which import that layer.
"""

import asyncio
import logging
from typing import Any

from common.consumers import streams
from common.deadletter import DEAD_LETTER_STREAM
from common.messaging import ListenerRunner
from common.metrics import (
    CONSUMER_ACK_PENDING,
    CONSUMER_PENDING,
    CONSUMER_REDELIVERED,
    CONSUMER_STALLED,
    DEAD_LETTERS,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PENDING,
    STREAM_USED_RATIO,
    oldest_age_seconds,
)
from common.mongo import Collection
from common.outbox import OUTBOX_FIELD, PENDING

log = logging.getLogger("common.scrape")


async def refresh_outbox(collections: list[Collection]) -> None:
    """Set the outbox gauges from the documents with pending entries (the relay's partial
    index on them answers the query)."""
    for collection in collections:
        entries: list[dict[str, Any]] = []
        async for document in collection.find(PENDING, {OUTBOX_FIELD: 1}):
            entries.extend(document.get(OUTBOX_FIELD) or [])
        OUTBOX_PENDING.labels(collection.name).set(len(entries))
        OUTBOX_OLDEST_AGE.labels(collection.name).set(oldest_age_seconds(entries))


# NATS answers each consumer's info within milliseconds; when it is out of reach, the scrape
# still answers within Prometheus' default 10 s timeout, with the lag gauges as last read.
NATS_READ_SECONDS = 4.0


async def refresh_consumers(runner: ListenerRunner) -> None:
    """Set each durable consumer's lag gauges from NATS, and the streams' gauges."""
    try:
        async with asyncio.timeout(NATS_READ_SECONDS):
            await _refresh_consumers(runner)
    except TimeoutError:
        log.warning(
            "NATS did not answer within %.0f s: lag gauges not refreshed", NATS_READ_SECONDS
        )


async def _refresh_consumers(runner: ListenerRunner) -> None:
    for entry in await runner.lag():
        consumer = entry["consumer"]
        CONSUMER_STALLED.labels(consumer).set(1 if entry["stalled"] else 0)
        if "pending" in entry:
            CONSUMER_PENDING.labels(consumer).set(entry["pending"])
            CONSUMER_ACK_PENDING.labels(consumer).set(entry["ack_pending"])
            CONSUMER_REDELIVERED.labels(consumer).set(entry["redelivered"])
    for name, stream in (await streams(runner.js)).items():
        if "error" in stream:
            continue
        if name == DEAD_LETTER_STREAM:
            DEAD_LETTERS.set(stream["messages"])
        if stream["used_fraction"] is not None:
            STREAM_USED_RATIO.labels(name).set(stream["used_fraction"])
