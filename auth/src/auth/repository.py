"""auth's storage: users (unique case-insensitive email) and the per-email sign-in throttle."""

from datetime import datetime
from typing import cast

from bson import ObjectId
from common.events import Event
from common.mongo import Database
from common.outbox import Outbox
from common.snapshot import Snapshot, email_digest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from auth.models import ThrottleDocument, UserDocument

USERS = "users"
THROTTLE = "signin_throttle"


async def create_indexes(db: Database) -> None:
    await db[USERS].create_index("email_key", unique=True)


def email_key(email: str) -> str:
    """The form emails are compared in: one account per address, whatever its case."""
    return email.strip().casefold()


async def insert_user(db: Database, outbox: Outbox, user: UserDocument, event: Event) -> bool:
    """Insert `user` with `event` pending, in one write; False when its email key is taken."""
    try:
        await outbox.insert_one(db[USERS], user, event)
    except DuplicateKeyError:
        return False
    return True


async def find_by_email(db: Database, *, email: str) -> UserDocument | None:
    return cast(UserDocument | None, await db[USERS].find_one({"email_key": email_key(email)}))


async def find_by_id(db: Database, *, user_id: ObjectId) -> UserDocument | None:
    return cast(UserDocument | None, await db[USERS].find_one({"_id": user_id}))


async def set_password(
    db: Database, outbox: Outbox, user: UserDocument, password_hash: str, event: Event
) -> UserDocument | None:
    """The new hash as the version after the one `user` was read at, with `event` pending in the
    same write; None when the user changed in between (the caller re-reads and tries again)."""
    updated = await outbox.find_one_and_update(
        db[USERS],
        {"_id": user["_id"], "version": user["version"]},
        {"$set": {"password": password_hash, "version": user["version"] + 1}},
        event,
        return_document=ReturnDocument.AFTER,
    )
    return cast(UserDocument | None, updated)


async def find_throttle(db: Database, *, key: str) -> ThrottleDocument | None:
    return cast(ThrottleDocument | None, await db[THROTTLE].find_one({"_id": key}))


async def count_failure(db: Database, *, key: str, now: datetime) -> ThrottleDocument:
    """One more failed sign-in for `key`; the entry as it is after."""
    entry = await db[THROTTLE].find_one_and_update(
        {"_id": key},
        {"$inc": {"failures": 1}, "$set": {"last_failure": now}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    assert entry is not None  # an upsert returning the document after it always has one
    return cast(ThrottleDocument, entry)


async def lock_until(db: Database, *, key: str, until: datetime) -> None:
    await db[THROTTLE].update_one({"_id": key}, {"$set": {"locked_until": until}})


async def clear_throttle(db: Database, *, key: str) -> None:
    await db[THROTTLE].delete_one({"_id": key})


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
