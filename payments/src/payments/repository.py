"""payments' storage: charges (one live charge per order, by index), and the orders/users replicas.

A charge is `live` while it is `created` (an attempt in flight or unresolved) or `completed`; a
unique partial index on `order_id` over live charges lets only one exist per order, so two
concurrent payments for one order cannot both charge the card. `attempt_until` is the lease of
the request working on a `created` charge; once it passes, another request (or the sweeper) may
resume the attempt with the same idempotency key.
"""

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from common.events import ChargeCreated, ChargeUpdated, OrderCreated
from common.messaging import RetryLater
from common.mongo import Database
from common.outbox import Outbox
from common.snapshot import Snapshot, email_digest, read_collection
from common.types import price_to_cents, utc_now
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

CHARGES = "charges"
ORDERS = "orders"
USERS = "users"


async def create_indexes(db: Database) -> None:
    await db[CHARGES].create_index(
        "order_id", unique=True, partialFilterExpression={"live": True}, name="one_live_charge"
    )
    await db[CHARGES].create_index("refund_due", sparse=True)
    await db[CHARGES].create_index([("status", 1), ("attempt_until", 1)])


# --- replicas -----------------------------------------------------------------------------


async def insert_order(db: Database, event: OrderCreated) -> None:
    """The order as OrderCreated describes it (version 0); a duplicate is a no-op."""
    try:
        await db[ORDERS].insert_one(
            {
                "_id": event.id,
                "version": event.version,
                "status": event.status,
                "user_id": event.user_id,
                "ticket_id": event.ticket.id,
                "amount": price_to_cents(event.ticket.price),
            }
        )
    except DuplicateKeyError:
        pass


async def _apply_version(
    db: Database, collection: str, doc_id: str, version: int, changes: dict[str, Any]
) -> bool:
    """Apply version N only on top of N-1; True if applied, False if already applied.

    Raises RetryLater when the replica is behind (an earlier event has not arrived yet).
    """
    result = await db[collection].update_one(
        {"_id": doc_id, "version": version - 1}, {"$set": {**changes, "version": version}}
    )
    if result.modified_count:
        return True
    current = await db[collection].find_one({"_id": doc_id}, {"version": 1})
    if current is None or current["version"] < version - 1:
        raise RetryLater(f"{collection} {doc_id} is not at version {version - 1} yet")
    return False


async def apply_order_status(db: Database, *, order_id: str, version: int, status: str) -> bool:
    return await _apply_version(db, ORDERS, order_id, version, {"status": status})


async def find_order(db: Database, *, order_id: str) -> dict[str, Any] | None:
    return await db[ORDERS].find_one({"_id": order_id})


async def insert_user(db: Database, *, user_id: str, email: str, version: int) -> None:
    try:
        await db[USERS].insert_one({"_id": user_id, "email": email, "version": version})
    except DuplicateKeyError:
        pass


async def apply_user(db: Database, *, user_id: str, email: str, version: int) -> bool:
    return await _apply_version(db, USERS, user_id, version, {"email": email})


async def find_user(db: Database, *, user_id: str) -> dict[str, Any] | None:
    return await db[USERS].find_one({"_id": user_id})


# --- charges ------------------------------------------------------------------------------


def _charge_updated(charge: dict[str, Any], **changes: Any) -> ChargeUpdated:
    merged = {**charge, **changes}
    return ChargeUpdated(
        id=str(merged["_id"]),
        version=merged["version"],
        order_id=merged["order_id"],
        status=merged["status"],
        amount=merged["amount"],
        stripe_id=merged.get("stripe_id"),
        stripe_refund_id=merged.get("stripe_refund_id"),
    )


async def start_charge(
    db: Database,
    outbox: Outbox,
    *,
    order: dict[str, Any],
    token: str,
    receipt_email: str | None,
    lease: timedelta,
) -> dict[str, Any] | None:
    """A new charge attempt (`created`, ChargeCreated in its outbox), leased to the caller.

    None when the order already has a live charge (in flight, unresolved or completed).
    """
    charge_id = ObjectId()
    event = ChargeCreated(
        id=str(charge_id),
        version=0,
        order_id=order["_id"],
        status="created",
        amount=order["amount"],
    )
    now = utc_now()
    document = {
        "_id": charge_id,
        "order_id": order["_id"],
        "user_id": order["user_id"],
        "status": "created",
        "live": True,
        "amount": order["amount"],
        "token": token,
        "receipt_email": receipt_email,
        "stripe_id": None,
        "stripe_refund_id": None,
        "version": 0,
        "created_at": now,
        "attempt_until": now + lease,
    }
    try:
        return await outbox.insert_one(db[CHARGES], document, event)
    except DuplicateKeyError:
        return None


async def find_live_charge(db: Database, *, order_id: str) -> dict[str, Any] | None:
    return await db[CHARGES].find_one({"order_id": order_id, "live": True})


async def has_failed_charge(db: Database, *, order_id: str) -> bool:
    """A declined attempt ends its order (orders cancels it on the failed ChargeUpdated)."""
    return (
        await db[CHARGES].find_one({"order_id": order_id, "status": "failed"}, {"_id": 1})
        is not None
    )


async def claim_attempt(
    db: Database, *, charge_id: ObjectId, lease: timedelta
) -> dict[str, Any] | None:
    """Take over an unresolved attempt whose lease has run out; None if someone holds it."""
    now = utc_now()
    return await db[CHARGES].find_one_and_update(
        {"_id": charge_id, "status": "created", "attempt_until": {"$lte": now}},
        {"$set": {"attempt_until": now + lease}},
        return_document=ReturnDocument.AFTER,
    )


async def release_attempt(db: Database, *, charge: dict[str, Any]) -> None:
    """The attempt's outcome is unknown: let the next request resume it at once."""
    await db[CHARGES].update_one(
        {"_id": charge["_id"], "status": "created"}, {"$set": {"attempt_until": utc_now()}}
    )


async def complete_charge(
    db: Database, outbox: Outbox, *, charge: dict[str, Any], stripe_id: str
) -> dict[str, Any] | None:
    version = charge["version"] + 1
    event = _charge_updated(charge, status="completed", stripe_id=stripe_id, version=version)
    completed: dict[str, Any] | None = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "status": "created", "version": charge["version"]},
        {
            "$set": {"status": "completed", "stripe_id": stripe_id, "version": version},
            "$unset": {"attempt_until": ""},
        },
        event,
        return_document=ReturnDocument.AFTER,
    )
    return completed


async def fail_charge(
    db: Database, outbox: Outbox, *, charge: dict[str, Any], reason: str
) -> dict[str, Any] | None:
    version = charge["version"] + 1
    event = _charge_updated(charge, status="failed", version=version)
    failed: dict[str, Any] | None = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "status": "created", "version": charge["version"]},
        {
            "$set": {"status": "failed", "failure": reason, "version": version},
            "$unset": {"live": "", "attempt_until": ""},
        },
        event,
        return_document=ReturnDocument.AFTER,
    )
    return failed


async def find_charge(db: Database, *, charge_id: ObjectId) -> dict[str, Any] | None:
    return await db[CHARGES].find_one({"_id": charge_id})


async def mark_refund_due(db: Database, *, order_id: str) -> int:
    """Flag the order's completed, unrefunded charges: their order ended cancelled."""
    result = await db[CHARGES].update_many(
        {"order_id": order_id, "status": "completed", "stripe_refund_id": None},
        {"$set": {"refund_due": True}},
    )
    return int(result.modified_count)


async def charges_owed_a_refund(
    db: Database, *, order_id: str | None = None
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {"refund_due": True}
    if order_id is not None:
        query["order_id"] = order_id
    return [charge async for charge in db[CHARGES].find(query, {"outbox": 0})]


async def record_refund(
    db: Database, outbox: Outbox, *, charge: dict[str, Any], refund_id: str
) -> dict[str, Any] | None:
    """Store the refund and announce it; None if another replica recorded it first."""
    version = charge["version"] + 1
    event = _charge_updated(charge, stripe_refund_id=refund_id, version=version)
    recorded: dict[str, Any] | None = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "version": charge["version"], "stripe_refund_id": None},
        {"$set": {"stripe_refund_id": refund_id, "version": version}, "$unset": {"refund_due": ""}},
        event,
        return_document=ReturnDocument.AFTER,
    )
    return recorded


async def unresolved_attempts(db: Database, *, now: datetime) -> list[dict[str, Any]]:
    """Charges still `created` whose attempt's lease ran out (the request failed or crashed)."""
    cursor = db[CHARGES].find({"status": "created", "attempt_until": {"$lte": now}}, {"outbox": 0})
    return [charge async for charge in cursor]


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: the charges (the source; never the card token) and the
    orders and users replicas (users by email digest)."""
    charge_fields = (
        "order_id",
        "status",
        "live",
        "amount",
        "stripe_id",
        "stripe_refund_id",
        "refund_due",
        "version",
    )
    users = [
        {
            "_id": user["_id"],
            "email_sha256": email_digest(user["email"]),
            "version": user["version"],
        }
        async for user in db[USERS].find({}, {"email": 1, "version": 1})
    ]
    return {
        CHARGES: await read_collection(db, CHARGES, charge_fields, count_outbox=True),
        ORDERS: await read_collection(
            db, ORDERS, ("version", "status", "user_id", "ticket_id", "amount")
        ),
        USERS: users,
    }
