"""`make verify`: is every replica equal to its source, and does every charge match its order?

    python -m devserver.verify                      # the system `make up` runs on this machine
    python -m devserver.verify --wait 60            # re-check until clean, at most 60 s
    python -m devserver.verify --service orders=http://127.0.0.1:9003   # e.g. a port-forward
    python -m devserver.verify --mongo-url mongodb://...   # read the databases directly

It reads each data service's snapshot (common.snapshot: GET /internal/snapshot on the service's
own port, never through the public entry point) or, with --mongo-url, the same snapshot straight
from MongoDB (one database per service, named after it), and the dead-letter stream from NATS.
Then it compares, and prints one line per difference:

- orders' tickets replica = tickets (title, price, seller, holder, version), both ways;
- payments' orders replica = orders (status, buyer, ticket, amount, version), both ways;
- payments' users replica = auth's users (email digest, version), both ways;
- tickets' reservations = the active orders (which order holds each ticket), and a ticket is
  sold exactly when that order is completed;
- expiration's timers = open orders (each open order has a pending timer, no finished one has);
- charges = orders (a completed order has exactly one completed charge; a completed charge
  belongs to a completed order or was refunded; no attempt or owed refund left unresolved);
- no double sale (a ticket in two completed orders, or in two active orders at once);
- no dead letter, and no event left unpublished in an outbox;
- with --stripe-url, Stripe's own records against the charges: every succeeded PaymentIntent
  is one charge's, for its amount, and every refund at Stripe is the one a charge records.

On a live system a difference can be a change still travelling (the consumers' backlog is
printed with the result); --wait re-checks until there is none. Exit code 0 when clean, 1 when
any difference remains, 2 when a service or NATS cannot be read.
"""

import argparse
import asyncio
import importlib
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
from common.bus_permissions import ADMIN_USER
from common.deadletter import DEAD_LETTER_STREAM
from common.messaging import STREAM_NAME
from common.snapshot import INTERNAL_SNAPSHOT_PATH, Snapshot
from nats.js.errors import NotFoundError

from devserver.infrastructure import LOCALSTRIPE_SECRET_KEY
from devserver.keys import stored_password
from devserver.routing import SERVICES
from devserver.system import SystemConfig

# The services whose state the checker compares (the client owns no data).
DATA_SERVICES = tuple(s.name for s in SERVICES if s.owns_data)
OPEN_STATUSES = ("created", "awaiting_payment")
ACTIVE_STATUSES = ("created", "awaiting_payment", "completed")
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


class UnreadableError(RuntimeError):
    """A service or NATS could not be read, so nothing can be said about consistency."""


@dataclass(frozen=True)
class Difference:
    """One thing that does not match: which check, about what, and how."""

    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


@dataclass
class SystemState:
    """Everything the checker compares, read from a running system."""

    snapshots: dict[str, Snapshot]
    dead_letters: int
    # durable consumer -> messages not yet delivered or not yet acknowledged
    backlog: dict[str, int] = field(default_factory=dict)
    # Stripe's side, when asked for (--stripe-url)
    stripe: "StripeLedger | None" = None

    def records(self, service: str, collection: str) -> dict[str, dict[str, Any]]:
        return {str(doc["_id"]): doc for doc in self.snapshots[service].get(collection, [])}


@dataclass
class Report:
    """What one check found."""

    differences: list[Difference]
    double_sales: list[Difference]
    dead_letters: int
    counts: dict[str, int]
    backlog: dict[str, int]

    @property
    def clean(self) -> bool:
        return not self.differences and not self.double_sales and self.dead_letters == 0

    def render(self) -> str:
        counted = ", ".join(f"{count} {what}" for what, count in self.counts.items())
        lines = [f"checked: {counted}"]
        pending = sum(self.backlog.values())
        busy = ", ".join(f"{name} {n}" for name, n in sorted(self.backlog.items()) if n)
        lines.append(f"consumers' backlog: {pending} message(s)" + (f" ({busy})" if busy else ""))
        lines.append(f"double sales: {len(self.double_sales)}")
        lines += [f"  {sale}" for sale in self.double_sales]
        lines.append(f"dead letters: {self.dead_letters} (stream {DEAD_LETTER_STREAM})")
        lines.append(f"differences: {len(self.differences)}")
        lines += [f"  {difference}" for difference in self.differences]
        lines.append("OK: every replica matches its source" if self.clean else "NOT CONSISTENT")
        return "\n".join(lines)


# --- comparing ------------------------------------------------------------------------------


def _compare_fields(
    check: str,
    subject: str,
    source: Mapping[str, Any],
    replica: Mapping[str, Any],
    fields: Mapping[str, str],
    source_name: str,
    replica_name: str,
) -> list[Difference]:
    """`fields` maps a field of the source to the same field in the replica."""
    found = []
    for source_field, replica_field in fields.items():
        want, have = source.get(source_field), replica.get(replica_field)
        if want != have:
            found.append(
                Difference(
                    check,
                    subject,
                    f"{replica_field} is {have!r} in {replica_name}, {want!r} in {source_name}",
                )
            )
    return found


def _compare_replica(
    check: str,
    what: str,
    source: Mapping[str, Mapping[str, Any]],
    replica: Mapping[str, Mapping[str, Any]],
    fields: Mapping[str, str],
    source_name: str,
    replica_name: str,
    expected: Iterable[str] | None = None,
) -> list[Difference]:
    """Every record of the source in the replica with equal fields, and nothing else there.

    `expected` narrows which source records the replica must have (default: all of them).
    """
    found = []
    for key in sorted(source if expected is None else expected):
        if key not in replica:
            found.append(Difference(check, f"{what} {key}", f"missing in {replica_name}"))
        else:
            found += _compare_fields(
                check, f"{what} {key}", source[key], replica[key], fields, source_name, replica_name
            )
    for key in sorted(set(replica) - set(source)):
        found.append(Difference(check, f"{what} {key}", f"in {replica_name}, not in {source_name}"))
    return found


def compare(state: SystemState) -> Report:
    """Every rule of the module docstring, on one read of the system."""
    tickets = state.records("tickets", "tickets")
    orders = state.records("orders", "orders")
    ticket_replica = state.records("orders", "tickets")
    users = state.records("auth", "users")
    user_replica = state.records("payments", "users")
    order_replica = state.records("payments", "orders")
    charges = state.records("payments", "charges")
    timers = state.records("expiration", "expirations")
    differences: list[Difference] = []

    differences += _compare_replica(
        "orders' tickets replica",
        "ticket",
        tickets,
        ticket_replica,
        {f: f for f in ("title", "price_cents", "user_id", "order_id", "version")},
        "tickets",
        "orders' replica",
    )
    # The replica's amount is the order's price; its other fields keep their names.
    orders_as_payments_sees_them = {
        key: {**order, "amount": (order.get("ticket") or {}).get("price_cents")}
        for key, order in orders.items()
    }
    differences += _compare_replica(
        "payments' orders replica",
        "order",
        orders_as_payments_sees_them,
        order_replica,
        {f: f for f in ("status", "user_id", "ticket_id", "amount", "version")},
        "orders",
        "payments' replica",
    )
    differences += _compare_replica(
        "payments' users replica",
        "user",
        users,
        user_replica,
        {"email_sha256": "email_sha256", "version": "version"},
        "auth",
        "payments' replica",
    )

    # Reservations: the ticket's holder is its one active order, if any.
    active_by_ticket: dict[str, list[str]] = defaultdict(list)
    completed_by_ticket: dict[str, list[str]] = defaultdict(list)
    for key, order in orders.items():
        if order.get("status") in ACTIVE_STATUSES:
            active_by_ticket[order["ticket_id"]].append(key)
        if order.get("status") == "completed":
            completed_by_ticket[order["ticket_id"]].append(key)
        if order.get("ticket_id") not in tickets:
            differences.append(
                Difference(
                    "reservations", f"order {key}", f"for unknown ticket {order['ticket_id']}"
                )
            )
    for key, ticket in sorted(tickets.items()):
        holders = active_by_ticket.get(key, [])
        expected = holders[0] if len(holders) == 1 else None
        if len(holders) <= 1 and ticket.get("order_id") != expected:
            differences.append(
                Difference(
                    "reservations",
                    f"ticket {key}",
                    f"held by {ticket.get('order_id')!r} in tickets, "
                    f"by {expected!r} in orders (its active order)",
                )
            )
        sold = bool(ticket.get("sold"))
        paid = expected is not None and orders[expected].get("status") == "completed"
        if len(holders) <= 1 and sold != paid:
            differences.append(
                Difference(
                    "sales",
                    f"ticket {key}",
                    ("sold" if sold else "not sold")
                    + f" in tickets, its order {expected!r} "
                    + ("completed" if paid else "not completed")
                    + " in orders",
                )
            )
    double_sales = [
        Difference("double sale", f"ticket {key}", f"in {len(keys)} {kind} orders: {sorted(keys)}")
        for kind, grouped in (("completed", completed_by_ticket), ("active", active_by_ticket))
        for key, keys in sorted(grouped.items())
        if len(keys) > 1
    ]

    # Timers: pending exactly while the order is open.
    for key, order in sorted(orders.items()):
        timer = timers.get(key)
        timer_state = None if timer is None else timer.get("state")
        if order.get("status") in OPEN_STATUSES and timer_state != "pending":
            differences.append(
                Difference(
                    "expiration timers",
                    f"order {key}",
                    f"{order['status']} in orders, timer "
                    + ("missing" if timer is None else f"{timer_state}"),
                )
            )
        if order.get("status") not in OPEN_STATUSES and timer_state == "pending":
            differences.append(
                Difference(
                    "expiration timers", f"order {key}", f"{order['status']}, timer still pending"
                )
            )
    for key, timer in sorted(timers.items()):
        if key not in orders and timer.get("state") == "pending":
            differences.append(
                Difference("expiration timers", f"order {key}", "pending timer, no such order")
            )

    differences += _compare_charges(orders, charges)
    if state.stripe is not None:
        differences += _compare_with_stripe(charges, state.stripe)

    unpublished = {
        f"{service}.{collection}": sum(int(doc.get("outbox_pending") or 0) for doc in documents)
        for service, snapshot in state.snapshots.items()
        for collection, documents in snapshot.items()
    }
    for where, count in sorted(unpublished.items()):
        if count:
            differences.append(
                Difference("outbox", where, f"{count} event(s) written but not yet published")
            )

    counts = {
        "users": len(users),
        "tickets": len(tickets),
        "orders": len(orders),
        "charges": len(charges),
        "timers": len(timers),
    }
    return Report(differences, double_sales, state.dead_letters, counts, dict(state.backlog))


def _compare_charges(
    orders: Mapping[str, Mapping[str, Any]], charges: Mapping[str, Mapping[str, Any]]
) -> list[Difference]:
    """Money against orders: paid ⇔ completed, and every other taking of money refunded."""
    check = "charges"
    found = []
    kept_by_order: dict[str, list[str]] = defaultdict(list)  # completed, not refunded
    for key, charge in sorted(charges.items()):
        order_id = charge.get("order_id")
        order = orders.get(str(order_id))
        subject = f"charge {key} (order {order_id})"
        status = charge.get("status")
        refunded = charge.get("stripe_refund_id") is not None
        if order is None:
            found.append(Difference(check, subject, f"{status}, for an order orders does not have"))
            continue
        if status == "created":
            found.append(Difference(check, subject, "attempt unresolved (still created)"))
        if charge.get("refund_due"):
            found.append(Difference(check, subject, "refund owed, not made yet"))
        if status == "completed" and not refunded:
            kept_by_order[str(order_id)].append(key)
            if order.get("status") != "completed":
                found.append(Difference(check, subject, f"money kept, order {order.get('status')}"))
        if refunded and order.get("status") == "completed":
            found.append(Difference(check, subject, "refunded, but the order is completed"))
    for key, order in sorted(orders.items()):
        kept = kept_by_order.get(key, [])
        if order.get("status") == "completed" and len(kept) != 1:
            found.append(
                Difference(check, f"order {key}", f"completed with {len(kept)} completed charge(s)")
            )
        elif order.get("status") != "completed" and len(kept) > 1:
            found.append(
                Difference(check, f"order {key}", f"{len(kept)} charges kept for one order")
            )
    return found


@dataclass(frozen=True)
class StripeLedger:
    """What Stripe itself holds: each PaymentIntent (status, amount), each refund's intent."""

    payment_intents: dict[str, dict[str, Any]]
    refunds: dict[str, str]  # refund id -> the PaymentIntent it refunds


def _compare_with_stripe(
    charges: Mapping[str, Mapping[str, Any]], stripe: StripeLedger
) -> list[Difference]:
    """Money as Stripe sees it against the charges payments recorded."""
    check = "stripe"
    found = []
    by_intent: dict[str, list[str]] = defaultdict(list)
    refunds_by_intent: dict[str, list[str]] = defaultdict(list)
    for refund, refunded_intent in stripe.refunds.items():
        refunds_by_intent[refunded_intent].append(refund)
    for key, charge in sorted(charges.items()):
        intent_id, refund_id = charge.get("stripe_id"), charge.get("stripe_refund_id")
        if intent_id is None:
            continue
        by_intent[str(intent_id)].append(key)
        intent = stripe.payment_intents.get(str(intent_id))
        subject = f"charge {key} ({intent_id})"
        if intent is None:
            found.append(Difference(check, subject, "Stripe has no such PaymentIntent"))
            continue
        if intent.get("status") != "succeeded" or intent.get("amount") != charge.get("amount"):
            found.append(
                Difference(
                    check,
                    subject,
                    f"{intent.get('status')} for {intent.get('amount')} at Stripe, "
                    f"{charge.get('status')} for {charge.get('amount')} in payments",
                )
            )
        if refund_id is not None and stripe.refunds.get(str(refund_id)) != intent_id:
            found.append(Difference(check, subject, f"refund {refund_id} is not at Stripe"))
    for intent_id, intent in sorted(stripe.payment_intents.items()):
        if intent.get("status") != "succeeded":
            continue
        recorded = by_intent.get(intent_id, [])
        if len(recorded) != 1:
            found.append(
                Difference(
                    check,
                    f"PaymentIntent {intent_id}",
                    f"{intent.get('amount')} taken at Stripe, recorded by {len(recorded)} "
                    "charge(s)",
                )
            )
    recorded_refunds = {charge.get("stripe_refund_id") for charge in charges.values()}
    for intent_id, refund_ids in sorted(refunds_by_intent.items()):
        if len(refund_ids) > 1:
            found.append(
                Difference(check, f"PaymentIntent {intent_id}", f"refunded {len(refund_ids)} times")
            )
        for refund_id in sorted(set(refund_ids) - recorded_refunds):
            found.append(
                Difference(check, f"refund {refund_id}", f"of {intent_id}, recorded by no charge")
            )
    return found


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where to read the system: each service's base URL (or one MongoDB), and NATS."""

    service_urls: dict[str, str]
    nats_url: str = DEFAULT_NATS_URL
    mongo_url: str | None = None
    # Stripe's API base and a key that may list PaymentIntents and refunds; None: not read.
    stripe_url: str | None = None
    stripe_key: str = LOCALSTRIPE_SECRET_KEY


async def _snapshot_over_http(client: httpx.AsyncClient, name: str, base_url: str) -> Snapshot:
    url = f"{base_url.rstrip('/')}{INTERNAL_SNAPSHOT_PATH}"
    try:
        response = await client.get(url)
    except httpx.HTTPError as error:
        raise UnreadableError(f"{name}: cannot read {url}: {error!r}") from None
    if response.status_code != 200:
        raise UnreadableError(f"{name}: {url} answered {response.status_code}")
    snapshot: Snapshot = response.json()
    return snapshot


async def _snapshots_from_mongo(mongo_url: str) -> dict[str, Snapshot]:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        snapshots = {}
        for name in DATA_SERVICES:
            repository = importlib.import_module(f"{name}.repository")
            snapshots[name] = await repository.snapshot(client[name])
        return snapshots
    finally:
        await client.close()


async def _bus_state(nats_url: str) -> tuple[int, dict[str, int]]:
    """How many dead letters there are, and each durable consumer's backlog."""
    try:
        nc = await nats.connect(
            nats_url, connect_timeout=3, max_reconnect_attempts=0, allow_reconnect=False
        )
    except Exception as error:
        raise UnreadableError(f"NATS at {nats_url}: {error!r}") from None
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(DEAD_LETTER_STREAM)
            dead_letters = int(info.state.messages)
        except NotFoundError:
            dead_letters = 0  # no dead-letter stream: nothing was ever dead-lettered into one
        backlog = {
            str(consumer.name): int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
            for consumer in await js.consumers_info(STREAM_NAME)
        }
        return dead_letters, backlog
    finally:
        await nc.close()


async def _stripe_list(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """Every object of a Stripe list endpoint, page by page."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    params: dict[str, str] = {"limit": "100"}
    while True:
        try:
            response = await client.get(url, params=params)
        except httpx.HTTPError as error:
            raise UnreadableError(f"Stripe: cannot read {url}: {error!r}") from None
        if response.status_code != 200:
            raise UnreadableError(f"Stripe: {url} answered {response.status_code}")
        page = response.json()
        fresh = [item for item in page.get("data", []) if item["id"] not in seen]
        items += fresh
        seen.update(item["id"] for item in fresh)
        if not page.get("has_more") or not fresh:
            return items
        params["starting_after"] = fresh[-1]["id"]


async def _stripe_ledger(base_url: str, key: str) -> StripeLedger:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30.0) as client:
        intents = await _stripe_list(client, "/v1/payment_intents")
        refunds = await _stripe_list(client, "/v1/refunds")
    return StripeLedger(
        payment_intents={
            item["id"]: {"status": item.get("status"), "amount": item.get("amount")}
            for item in intents
        },
        refunds={item["id"]: str(item.get("payment_intent")) for item in refunds},
    )


async def read_state(sources: Sources) -> SystemState:
    """One read of every data service and the bus (raises UnreadableError)."""
    if sources.mongo_url:
        snapshots = await _snapshots_from_mongo(sources.mongo_url)
    else:
        async with httpx.AsyncClient(timeout=30.0) as client:
            read = await asyncio.gather(
                *(
                    _snapshot_over_http(client, name, sources.service_urls[name])
                    for name in DATA_SERVICES
                )
            )
        snapshots = dict(zip(DATA_SERVICES, read, strict=True))
    dead_letters, backlog = await _bus_state(sources.nats_url)
    stripe = (
        await _stripe_ledger(sources.stripe_url, sources.stripe_key) if sources.stripe_url else None
    )
    return SystemState(
        snapshots=snapshots, dead_letters=dead_letters, backlog=backlog, stripe=stripe
    )


async def check(sources: Sources) -> Report:
    """Read the system once and compare."""
    return compare(await read_state(sources))


async def check_until_clean(sources: Sources, *, within_seconds: float) -> Report:
    """Re-check until clean or until `within_seconds` have passed; the last report either way."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_seconds
    while True:
        report = await check(sources)
        if report.clean or loop.time() >= deadline:
            return report
        await asyncio.sleep(min(1.0, max(deadline - loop.time(), 0)))


# --- the command ----------------------------------------------------------------------------


def _service_url(value: str) -> tuple[str, str]:
    name, _, url = value.partition("=")
    if name not in DATA_SERVICES or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"expected NAME=URL with NAME one of {', '.join(DATA_SERVICES)}, got {value!r}"
        )
    return name, url


def parse_sources(argv: list[str] | None = None) -> tuple[Sources, float]:
    parser = argparse.ArgumentParser(
        prog="python -m devserver.verify",
        description="Compare every replica with its source and every charge with its order.",
    )
    parser.add_argument(
        "--service",
        type=_service_url,
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a service's own base URL (default: make up's, http://127.0.0.1:<dev port>)",
    )
    parser.add_argument(
        "--nats-url",
        default=None,
        help="default: make up's NATS as its admin user (password from the data dir)",
    )
    parser.add_argument(
        "--mongo-url", default=None, help="read the databases directly instead of the services"
    )
    parser.add_argument(
        "--stripe-url",
        default=None,
        help="also compare Stripe's PaymentIntents and refunds with the charges "
        "(make up's fake Stripe: http://127.0.0.1:8420)",
    )
    parser.add_argument(
        "--stripe-key",
        default=LOCALSTRIPE_SECRET_KEY,
        help="a key allowed to list PaymentIntents and refunds (default: the fake Stripe's)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="re-check until clean, for at most this long (changes still travelling settle)",
    )
    args = parser.parse_args(argv)
    urls = {s.name: f"http://127.0.0.1:{s.dev_port}" for s in SERVICES if s.owns_data}
    urls.update(dict(args.service))
    sources = Sources(
        urls,
        args.nats_url or _make_up_nats_url(),
        args.mongo_url,
        stripe_url=args.stripe_url,
        stripe_key=args.stripe_key,
    )
    return sources, max(args.wait, 0.0)


def _make_up_nats_url() -> str:
    """`make up`'s NATS admits only its users: the admin's, whose password it keeps."""
    password = stored_password(SystemConfig.from_environment().data_dir, f"nats/{ADMIN_USER}")
    if password is None:
        return DEFAULT_NATS_URL
    return DEFAULT_NATS_URL.replace("nats://", f"nats://{ADMIN_USER}:{password}@")


def main(argv: list[str] | None = None) -> int:
    sources, wait = parse_sources(argv)
    try:
        report = asyncio.run(check_until_clean(sources, within_seconds=wait))
    except UnreadableError as error:
        print(f"verify: cannot read the system: {error}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.clean else 1


if __name__ == "__main__":
    sys.exit(main())
