"""The dead-letter command: list, show, replay and discard what listeners gave up on.

    python -m common.dlq list [--consumer C]
    python -m common.dlq show SEQ
    python -m common.dlq replay SEQ... | --all [--consumer C]
    python -m common.dlq discard SEQ... | --all [--consumer C]

It reads NATS_URL (default nats://127.0.0.1:4222, as `make up` runs it); `make dlq ARGS=...`
runs it locally, and on Kubernetes it runs inside any service's pod, whose image has it and
whose environment has NATS_URL: `kubectl exec deploy/orders -- python -m common.dlq list`.

Replay republishes the original payload and headers to the original subject under a new
message id (the original id would be dropped by the stream's duplicate window), then deletes the
record; every consumer of that subject sees the event again, which the version checks in every
handler make harmless. Two replays of one record store one message (same replay id), and a
second replay after the first finds nothing to do.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import TextIO

import nats
from nats.js import JetStreamContext
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.deadletter import (
    StoredDeadLetter,
    dead_letter,
    dead_letters,
    remove_dead_letter,
    replay_headers,
)
from common.messaging import STREAM_NAME


class DeadLetterToolSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    nats_url: str = "nats://127.0.0.1:4222"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m common.dlq", description=__doc__.split("\n")[0]
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="one line per dead letter, oldest first")
    listing.add_argument("--consumer", help="only this consumer's (e.g. orders-ticket-updated-v1)")
    show = verbs.add_parser("show", help="the whole record, as JSON")
    show.add_argument("sequence", type=int)
    for verb, text in (
        ("replay", "republish to the original subject, then delete the record"),
        ("discard", "delete the record without replaying it"),
    ):
        command = verbs.add_parser(verb, help=text)
        command.add_argument("sequences", type=int, nargs="*", metavar="SEQ")
        command.add_argument("--all", action="store_true", help="every record (of --consumer)")
        command.add_argument("--consumer")
    return parser


def _line(stored: StoredDeadLetter) -> str:
    record = stored.record
    error = record.last_error.replace("\n", " ")
    return (
        f"{stored.sequence:>6}  {record.dead_lettered_at:%Y-%m-%d %H:%M:%S}Z  {record.consumer}  "
        f"{record.reason}  {record.event_type or '?'} {record.event_id or '-'}  "
        f"delivered {record.delivered}, failed {record.failures}  {error[:120]}"
    )


async def _chosen(
    js: JetStreamContext, args: argparse.Namespace, out: TextIO
) -> list[StoredDeadLetter] | None:
    if args.all == bool(args.sequences):
        print("give either sequence numbers or --all", file=out)
        return None
    if args.all:
        return [stored async for stored in dead_letters(js, consumer=args.consumer)]
    chosen = []
    for sequence in args.sequences:
        stored = await dead_letter(js, sequence)
        if stored is None:
            print(f"{sequence}: no such dead letter (already replayed or discarded?)", file=out)
        else:
            chosen.append(stored)
    return chosen


async def replay(js: JetStreamContext, stored: StoredDeadLetter) -> bool:
    """Republish one record's original message, then delete the record; False if it was gone
    by then (someone else replayed or discarded it meanwhile: the republish is then the same
    message id as theirs, which the stream drops inside its duplicate window)."""
    record = stored.record
    await js.publish(
        record.subject,
        record.original_payload(),
        stream=STREAM_NAME,
        headers=dict(replay_headers(record, stored.sequence)),
        timeout=5,
    )
    return await remove_dead_letter(js, stored.sequence)


async def _quiet(error: Exception) -> None:
    """nats-py prints every failed attempt's traceback by default; the one line below says it."""


async def run(argv: Sequence[str], *, nats_url: str, out: TextIO = sys.stdout) -> int:
    """Run one command; the exit status (0 done, 1 something asked for was not there)."""
    args = _parser().parse_args(argv)
    try:
        nc = await nats.connect(
            nats_url, connect_timeout=5, max_reconnect_attempts=1, error_cb=_quiet
        )
    except Exception as error:
        where = nats_url.rpartition("@")[2]  # never the password
        print(f"cannot reach NATS at {where}: {type(error).__name__} {error}", file=out)
        return 2
    try:
        js = nc.jetstream()
        if args.verb == "list":
            count = 0
            async for stored in dead_letters(js, consumer=args.consumer):
                print(_line(stored), file=out)
                count += 1
            print(f"{count} dead letter(s)", file=out)
            return 0
        if args.verb == "show":
            found = await dead_letter(js, args.sequence)
            if found is None:
                print(f"{args.sequence}: no such dead letter", file=out)
                return 1
            shown = {"sequence": found.sequence, **found.record.model_dump(mode="json")}
            print(json.dumps(shown, indent=2), file=out)
            return 0
        chosen = await _chosen(js, args, out)
        if chosen is None:
            return 2
        # Something asked for by number that was not there is worth a non-zero status.
        status = 0 if args.all or len(chosen) == len(args.sequences) else 1
        for stored in chosen:
            if args.verb == "replay":
                done = await replay(js, stored)
                verb = "replayed to " + stored.record.subject
            else:
                done = await remove_dead_letter(js, stored.sequence)
                verb = "discarded"
            print(f"{stored.sequence}: {verb if done else 'already gone'}", file=out)
            if not done:
                status = 1
        return status
    finally:
        await nc.close()


def main() -> None:
    settings = DeadLetterToolSettings()
    sys.exit(asyncio.run(run(sys.argv[1:], nats_url=settings.nats_url)))


if __name__ == "__main__":
    main()
