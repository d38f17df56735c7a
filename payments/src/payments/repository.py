"""payments' storage: charges (one live charge per order, by index), and the orders/users replicas.

A charge is `live` while it is `created` (an attempt in flight or unresolved) or `completed`; a
unique partial index on `order_id` over live charges lets only one exist per order, so two
concurrent payments for one order cannot both charge the card. `attempt_until` is the lease of
the request working on a `created` charge; once it passes, another request (or the sweeper) may
resume the attempt with the same idempotency key.
"""

from datetime import datetime, timedelta
from typing import cast

from bson import ObjectId
from common.events import Event, OrderStatus
from common.mongo import Database, Document
from common.outbox import Outbox
from common.snapshot import Snapshot, email_digest, read_collection
from common.types import utc_now
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from payments.models import ChargeDocument, DisputeDocument, OrderReplica, UserReplica

CHARGES = "charges"
STRIPE_EVENTS = "stripe_events"  # webhook events applied, by Stripe's event id
# Stripe redelivers an event for up to three days; remembered longer than that.
STRIPE_EVENT_DAYS = 30
ORDERS = "orders"  # the replica, fed by OrderCreated / OrderUpdated / OrderCancelled
USERS = "users"  # the replica, fed by UserCreated / UserUpdated


async def create_indexes(db: Database) -> None:
    await db[CHARGES].create_index(
        "order_id", unique=True, partialFilterExpression={"live": True}, name="one_live_charge"
    )
    await db[CHARGES].create_index("refund_due", sparse=True)
    await db[CHARGES].create_index([("status", 1), ("attempt_until", 1)])
    # A webhook event names a PaymentIntent: found by the id stored when Stripe created it, or
    # (charges from before intent_id was stored) by the completed charge's stripe_id.
    await db[CHARGES].create_index("intent_id", sparse=True)
    await db[CHARGES].create_index("stripe_id", sparse=True)
    await db[STRIPE_EVENTS].create_index(
        "received_at", expireAfterSeconds=STRIPE_EVENT_DAYS * 24 * 3600
    )


# --- replicas ------------------------------------------------------------------------------------


async def _insert_replica(db: Database, collection: str, document: Document) -> bool:
    """False when the document is there already."""
    try:
        await db[collection].insert_one(document)
    except DuplicateKeyError:
        return False
    return True


async def _write_version(
    db: Database, collection: str, doc_id: str, version: int, changes: Document
) -> bool:
    """Write `changes` as `version` only over version - 1; False when that is not stored."""
    result = await db[collection].update_one(
        {"_id": doc_id, "version": version - 1}, {"$set": {**changes, "version": version}}
    )
    return result.modified_count == 1


async def _version(db: Database, collection: str, doc_id: str) -> int | None:
    current = await db[collection].find_one({"_id": doc_id}, {"version": 1})
    return None if current is None else int(current["version"])


async def insert_order(db: Database, order: OrderReplica) -> bool:
    """Add an order to the replica; False when it is there already."""
    return await _insert_replica(db, ORDERS, cast(Document, order))


async def write_order_status(
    db: Database, *, order_id: str, version: int, status: OrderStatus
) -> bool:
    """Write the order's status at `version` only over version - 1; False when not stored."""
    return await _write_version(db, ORDERS, order_id, version, {"status": status})


async def order_version(db: Database, *, order_id: str) -> int | None:
    """The replica's version of an order; None when it has not got the order."""
    return await _version(db, ORDERS, order_id)


async def find_order(db: Database, *, order_id: str) -> OrderReplica | None:
    return cast(OrderReplica | None, await db[ORDERS].find_one({"_id": order_id}))


async def insert_user(db: Database, user: UserReplica) -> bool:
    """Add a user to the replica; False when it is there already."""
    return await _insert_replica(db, USERS, cast(Document, user))


async def write_user_email(db: Database, *, user_id: str, version: int, email: str) -> bool:
    """Write the user's email at `version` only over version - 1; False when not stored."""
    return await _write_version(db, USERS, user_id, version, {"email": email})


async def user_version(db: Database, *, user_id: str) -> int | None:
    """The replica's version of a user; None when it has not got the user."""
    return await _version(db, USERS, user_id)


async def find_user(db: Database, *, user_id: str) -> UserReplica | None:
    return cast(UserReplica | None, await db[USERS].find_one({"_id": user_id}))


# --- charges -------------------------------------------------------------------------------------


async def insert_charge(
    db: Database, outbox: Outbox, charge: ChargeDocument, event: Event
) -> ChargeDocument | None:
    """Insert a new live charge with `event` pending, in one write; returns it as stored.

    None when the order already has a live charge (in flight, unresolved or completed).
    """
    try:
        stored = await outbox.insert_one(db[CHARGES], cast(Document, charge), event)
    except DuplicateKeyError:
        return None
    return cast(ChargeDocument, stored)


async def find_charge(db: Database, *, charge_id: ObjectId) -> ChargeDocument | None:
    return cast(ChargeDocument | None, await db[CHARGES].find_one({"_id": charge_id}))


async def find_live_charge(db: Database, *, order_id: str) -> ChargeDocument | None:
    found = await db[CHARGES].find_one({"order_id": order_id, "live": True})
    return cast(ChargeDocument | None, found)


async def find_charge_for_intent(
    db: Database, *, intent_id: str, charge_id: str | None
) -> ChargeDocument | None:
    """The charge a PaymentIntent belongs to: by its stored id, else by the charge id Stripe
    keeps in the intent's metadata (an attempt whose create call never came back)."""
    found = await db[CHARGES].find_one(
        {"$or": [{"intent_id": intent_id}, {"stripe_id": intent_id}]}, {"outbox": 0}
    )
    if found is None and charge_id is not None and ObjectId.is_valid(charge_id):
        found = await db[CHARGES].find_one({"_id": ObjectId(charge_id)}, {"outbox": 0})
    return cast(ChargeDocument | None, found)


async def set_intent(db: Database, *, charge_id: ObjectId, intent_id: str) -> None:
    """Remember the PaymentIntent Stripe created for this attempt. Not a version: nothing is
    announced until the attempt has an outcome."""
    await db[CHARGES].update_one({"_id": charge_id}, {"$set": {"intent_id": intent_id}})


async def has_failed_charge(db: Database, *, order_id: str) -> bool:
    found = await db[CHARGES].find_one({"order_id": order_id, "status": "failed"}, {"_id": 1})
    return found is not None


async def claim_attempt(
    db: Database, *, charge_id: ObjectId, lease: timedelta
) -> ChargeDocument | None:
    """Take over an unresolved attempt whose lease has run out; None if someone holds it."""
    now = utc_now()
    claimed = await db[CHARGES].find_one_and_update(
        {"_id": charge_id, "status": "created", "attempt_until": {"$lte": now}},
        {"$set": {"attempt_until": now + lease}},
        return_document=ReturnDocument.AFTER,
    )
    return cast(ChargeDocument | None, claimed)


async def release_attempt(db: Database, *, charge_id: ObjectId) -> None:
    """End the lease of a `created` charge now, so the next request may resume it at once."""
    await db[CHARGES].update_one(
        {"_id": charge_id, "status": "created"}, {"$set": {"attempt_until": utc_now()}}
    )


async def complete_charge(
    db: Database, outbox: Outbox, *, charge: ChargeDocument, stripe_id: str, event: Event
) -> ChargeDocument | None:
    """`created` -> `completed` as version + 1, with `event` pending; None when the charge is no
    longer `created` at the version it was read at."""
    version = charge["version"] + 1
    completed = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "status": "created", "version": charge["version"]},
        {
            "$set": {"status": "completed", "stripe_id": stripe_id, "version": version},
            "$unset": {"attempt_until": ""},
        },
        event,
        return_document=ReturnDocument.AFTER,
    )
    return cast(ChargeDocument | None, completed)


async def fail_charge(
    db: Database, outbox: Outbox, *, charge: ChargeDocument, reason: str, event: Event
) -> ChargeDocument | None:
    """`created` -> `failed` (no longer live) as version + 1, with `event` pending; None when
    the charge is no longer `created` at the version it was read at."""
    failed = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "status": "created", "version": charge["version"]},
        {
            "$set": {"status": "failed", "failure": reason, "version": charge["version"] + 1},
            "$unset": {"live": "", "attempt_until": ""},
        },
        event,
        return_document=ReturnDocument.AFTER,
    )
    return cast(ChargeDocument | None, failed)


async def mark_refund_due(db: Database, *, order_id: str) -> int:
    """Flag the order's completed, unrefunded charges; returns how many were flagged now."""
    result = await db[CHARGES].update_many(
        {"order_id": order_id, "status": "completed", "stripe_refund_id": None},
        {"$set": {"refund_due": True}},
    )
    return int(result.modified_count)


async def charges_owed_a_refund(
    db: Database, *, order_id: str | None = None
) -> list[ChargeDocument]:
    query: Document = {"refund_due": True}
    if order_id is not None:
        query["order_id"] = order_id
    return [cast(ChargeDocument, charge) async for charge in db[CHARGES].find(query, {"outbox": 0})]


async def record_refund(
    db: Database,
    outbox: Outbox,
    *,
    charge: ChargeDocument,
    refund_id: str,
    event: Event,
    stripe_id: str | None = None,
) -> ChargeDocument | None:
    """Store the refund as version + 1, with `event` pending; None if another replica recorded
    it first. `stripe_id`: the intent refunded, for a failed charge that had none recorded."""
    changes: Document = {"stripe_refund_id": refund_id, "version": charge["version"] + 1}
    if stripe_id is not None:
        changes["stripe_id"] = stripe_id
    recorded = await outbox.find_one_and_update(
        db[CHARGES],
        {"_id": charge["_id"], "version": charge["version"], "stripe_refund_id": None},
        {"$set": changes, "$unset": {"refund_due": ""}},
        event,
        return_document=ReturnDocument.AFTER,
    )
    return cast(ChargeDocument | None, recorded)


async def record_dispute(
    db: Database, outbox: Outbox, *, charge: ChargeDocument, dispute: DisputeDocument, event: Event
) -> ChargeDocument | None:
    """Store the dispute's state as version + 1, with `event` pending; None when the charge
    changed since it was read or a newer event about the dispute was applied already."""
    query: Document = {
        "_id": charge["_id"],
        "version": charge["version"],
        "$or": [
            {"dispute": {"$exists": False}},
            {"dispute.event_created": {"$lte": dispute["event_created"]}},
        ],
    }
    recorded = await outbox.find_one_and_update(
        db[CHARGES],
        query,
        {"$set": {"dispute": cast(Document, dispute), "version": charge["version"] + 1}},
        event,
        return_document=ReturnDocument.AFTER,
    )
    return cast(ChargeDocument | None, recorded)


async def stripe_event_applied(db: Database, *, event_id: str) -> bool:
    return await db[STRIPE_EVENTS].find_one({"_id": event_id}, {"_id": 1}) is not None


async def remember_stripe_event(db: Database, *, event_id: str, event_type: str) -> None:
    """Record a webhook event as applied (a concurrent redelivery may have recorded it first)."""
    try:
        await db[STRIPE_EVENTS].insert_one(
            {"_id": event_id, "type": event_type, "received_at": utc_now()}
        )
    except DuplicateKeyError:
        pass


async def unresolved_attempts(db: Database, *, now: datetime) -> list[ChargeDocument]:
    """Charges still `created` whose attempt's lease ran out (the request failed or crashed)."""
    cursor = db[CHARGES].find({"status": "created", "attempt_until": {"$lte": now}}, {"outbox": 0})
    return [cast(ChargeDocument, charge) async for charge in cursor]


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
