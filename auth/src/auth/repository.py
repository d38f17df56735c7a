"""auth's storage: users (unique case-insensitive email) and the per-email sign-in throttle."""

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from common.domain_errors import Conflict
from common.events import UserCreated, UserUpdated
from common.mongo import Database
from common.outbox import Outbox
from common.snapshot import Snapshot, email_digest
from common.types import utc_now
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

USERS = "users"
THROTTLE = "signin_throttle"


async def create_indexes(db: Database) -> None:
    await db[USERS].create_index("email_key", unique=True)


def _email_key(email: str) -> str:
    return email.strip().casefold()


async def create_user(
    db: Database, outbox: Outbox, *, email: str, password_hash: str
) -> dict[str, Any]:
    """Insert a user and its UserCreated event in one write; 400 when the email is taken."""
    user_id = ObjectId()
    event = UserCreated(id=str(user_id), email=email, version=0)
    document = {
        "_id": user_id,
        "email": email,
        "email_key": _email_key(email),
        "password": password_hash,
        "version": 0,
    }
    try:
        return await outbox.insert_one(db[USERS], document, event)
    except DuplicateKeyError:
        raise Conflict("Email in use", field="email") from None


async def find_by_email(db: Database, *, email: str) -> dict[str, Any] | None:
    return await db[USERS].find_one({"email_key": _email_key(email)})


async def find_by_id(db: Database, *, user_id: ObjectId) -> dict[str, Any] | None:
    return await db[USERS].find_one({"_id": user_id})


async def change_password(
    db: Database, outbox: Outbox, *, user: dict[str, Any], password_hash: str
) -> dict[str, Any] | None:
    """Set a new hash and bump the version, with UserUpdated in the same write.

    None when the user changed in between (the caller retries from a fresh read).
    """
    version = user["version"] + 1
    event = UserUpdated(id=str(user["_id"]), email=user["email"], version=version)
    updated: dict[str, Any] | None = await outbox.find_one_and_update(
        db[USERS],
        {"_id": user["_id"], "version": user["version"]},
        {"$set": {"password": password_hash, "version": version}},
        event,
        return_document=ReturnDocument.AFTER,
    )
    return updated


async def signin_locked_until(db: Database, *, email: str) -> datetime | None:
    """When sign-ins for this email are allowed again, if they are held back now."""
    entry = await db[THROTTLE].find_one({"_id": _email_key(email)})
    if entry and entry.get("locked_until") and entry["locked_until"] > utc_now():
        return entry["locked_until"]
    return None


async def record_failed_signin(
    db: Database, *, email: str, free_attempts: int, max_lockout_seconds: int
) -> None:
    """Count a failure; past the free attempts, each failure doubles the wait (capped), so an
    attacker slows guessing down but can never lock the owner out for longer than the cap."""
    entry = await db[THROTTLE].find_one_and_update(
        {"_id": _email_key(email)},
        {"$inc": {"failures": 1}, "$set": {"last_failure": utc_now()}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert entry is not None  # an upsert returning the document after it always has one
    excess = entry["failures"] - free_attempts
    if excess >= 0:
        wait = min(2**excess, max_lockout_seconds)
        await db[THROTTLE].update_one(
            {"_id": entry["_id"]}, {"$set": {"locked_until": utc_now() + timedelta(seconds=wait)}}
        )


async def clear_failed_signins(db: Database, *, email: str) -> None:
    await db[THROTTLE].delete_one({"_id": _email_key(email)})


async def snapshot(db: Database) -> Snapshot:
    """What `make verify` compares: each user's version and email digest (payments' replica)."""
    users = []
    async for user in db[USERS].find({}, {"email": 1, "version": 1, "outbox.id": 1}):
        users.append(
            {
                "_id": str(user["_id"]),
                "email_sha256": email_digest(user["email"]),
                "version": user["version"],
                "outbox_pending": len(user.get("outbox") or []),
            }
        )
    return {USERS: users}
