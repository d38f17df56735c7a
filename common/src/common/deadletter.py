"""The dead-letter stream: what a listener could not handle, kept whole until someone decides.

A message whose handler keeps failing with a real error, or that cannot be parsed, is written
to `TICKETING_DLQ` on `deadletter.<consumer>` as one JSON record (its original subject, headers
and payload with what went wrong), and only then terminated in its consumer. `python -m
common.dlq` lists, shows, replays and discards these records.
"""

import base64
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Literal

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RawStreamMsg, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError
from pydantic import BaseModel, ConfigDict

DEAD_LETTER_STREAM = "TICKETING_DLQ"
DEAD_LETTER_PREFIX = "deadletter"
# Outside `ticketing.>`, so no listener and no replica ever sees a dead letter as an event.
DEAD_LETTER_SUBJECTS = [f"{DEAD_LETTER_PREFIX}.>"]

Reason = Literal["failed", "unparseable"]
# JetStream's error code for deleting a message that is not (or no longer) in the stream.
NO_MESSAGE_FOUND = 10057


def dead_letter_subject(consumer: str) -> str:
    return f"{DEAD_LETTER_PREFIX}.{consumer}"


def dead_letter_stream_config(
    *, max_bytes: int, replicas: int = 1, storage: StorageType = StorageType.FILE
) -> StreamConfig:
    """No age limit: a dead letter stays until it is replayed or discarded. When the stream is
    full it refuses new records (discard New), and the listener then keeps the message and
    retries it rather than terminating it with nowhere to put it."""
    return StreamConfig(
        name=DEAD_LETTER_STREAM,
        subjects=DEAD_LETTER_SUBJECTS,
        storage=storage,
        num_replicas=replicas,
        max_bytes=max_bytes,
        discard=DiscardPolicy.NEW,
        # The record's id is consumer + stream sequence: a listener that dies between writing
        # the record and terminating the message writes it again, and this drops the copy.
        duplicate_window=600.0,
    )


class DeadLetter(BaseModel):
    """One dead-lettered delivery: the original message, the consumer and what went wrong."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: str
    headers: dict[str, str]
    # The original payload as text when it is UTF-8, otherwise in base64 (and `payload` is None).
    payload: str | None
    payload_base64: str | None = None
    service: str
    consumer: str
    stream: str
    stream_sequence: int
    delivered: int
    failures: int
    reason: Reason
    last_error: str
    dead_lettered_at: datetime
    # Read from the envelope when it parsed (or as far as it did); empty when unknown.
    event_type: str = ""
    event_id: str = ""

    @classmethod
    def from_message(
        cls,
        msg: Msg,
        *,
        service: str,
        reason: Reason,
        failures: int,
        error: str,
        event_type: str = "",
        event_id: str = "",
    ) -> "DeadLetter":
        metadata = msg.metadata
        try:
            payload: str | None = msg.data.decode()
            payload_base64 = None
        except UnicodeDecodeError:
            payload, payload_base64 = None, base64.b64encode(msg.data).decode()
        return cls(
            subject=msg.subject,
            headers={str(k): str(v) for k, v in (msg.headers or {}).items()},
            payload=payload,
            payload_base64=payload_base64,
            service=service,
            consumer=metadata.consumer,
            stream=metadata.stream,
            stream_sequence=metadata.sequence.stream,
            delivered=metadata.num_delivered,
            failures=failures,
            reason=reason,
            last_error=error,
            dead_lettered_at=datetime.now(UTC),
            event_type=event_type or _peek(msg.data, "type"),
            event_id=event_id or _peek(msg.data, "id"),
        )

    def original_payload(self) -> bytes:
        if self.payload is not None:
            return self.payload.encode()
        return base64.b64decode(self.payload_base64 or "")

    @property
    def record_id(self) -> str:
        """Unique per delivery that was given up on: the same message dead-lettered twice by
        one consumer (a retry after a crash) is one record."""
        return f"{self.consumer}:{self.stream}:{self.stream_sequence}"


def _peek(data: bytes, key: str) -> str:
    """A field of a payload that may not parse as an envelope, for the listing only."""
    try:
        value = json.loads(data).get(key)
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


async def publish_dead_letter(js: JetStreamContext, record: DeadLetter) -> None:
    """Store the record; raises when the dead-letter stream does not (then nothing is lost:
    the caller keeps the original message and retries it)."""
    await js.publish(
        dead_letter_subject(record.consumer),
        record.model_dump_json().encode(),
        stream=DEAD_LETTER_STREAM,
        headers={"Nats-Msg-Id": record.record_id},
        timeout=5,
    )


class StoredDeadLetter(BaseModel):
    """A record as it sits in the dead-letter stream, with the sequence that names it."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    record: DeadLetter


def _stored(raw: RawStreamMsg) -> StoredDeadLetter:
    assert raw.seq is not None
    return StoredDeadLetter(
        sequence=raw.seq, record=DeadLetter.model_validate_json(raw.data or b"{}")
    )


async def dead_letters(
    js: JetStreamContext, *, consumer: str | None = None
) -> AsyncIterator[StoredDeadLetter]:
    """Every record still in the stream, oldest first (only `consumer`'s when given)."""
    subject = dead_letter_subject(consumer) if consumer else DEAD_LETTER_SUBJECTS[0]
    sequence = 1
    while True:
        try:
            raw = await js.get_msg(DEAD_LETTER_STREAM, sequence, subject=subject, next=True)
        except NotFoundError:
            return
        stored = _stored(raw)
        yield stored
        sequence = stored.sequence + 1


async def dead_letter(js: JetStreamContext, sequence: int) -> StoredDeadLetter | None:
    try:
        raw = await js.get_msg(DEAD_LETTER_STREAM, sequence)
    except NotFoundError:
        return None
    return _stored(raw)


async def remove_dead_letter(js: JetStreamContext, sequence: int) -> bool:
    """Delete one record; False when it was not there (already replayed or discarded)."""
    try:
        return bool(await js.delete_msg(DEAD_LETTER_STREAM, sequence))
    except NotFoundError:
        return False
    except APIError as error:
        if error.err_code == NO_MESSAGE_FOUND:
            return False
        raise


def replay_headers(record: DeadLetter, sequence: int) -> Mapping[str, str]:
    """The original headers for a replay, with a message id of its own.

    The original Nats-Msg-Id would be dropped as a duplicate inside the stream's window; the
    replay's id is derived from the dead letter, so two replays of one record at once store one
    message. Other Nats-* headers were the server's, not the publisher's.
    """
    headers = {k: v for k, v in record.headers.items() if not k.lower().startswith("nats-")}
    headers["Nats-Msg-Id"] = f"replay:{record.record_id}:{sequence}"
    headers["Gittix-Replay-Of"] = f"{DEAD_LETTER_STREAM}:{sequence}"
    return headers
