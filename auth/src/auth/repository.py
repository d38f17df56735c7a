"""auth's storage: users (unique case-insensitive email), failed sign-in counts, sessions."""

from datetime import datetime, timedelta
from typing import cast

from bson import ObjectId
from common.events import Event
from common.mongo import Database, Document
from common.outbox import Outbox
from common.rate_limit import create_rate_limit_indexes
from common.snapshot import Snapshot, email_digest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from auth.models import FailureCount, SessionDocument, UserDocument

USERS = "users"
THROTTLE = "signin_throttle"
ACCOUNT_FAILURES = "signin_account_failures"
SESSIONS = "sessions"


async def create_indexes(db: Database) -> None:
    await db[USERS].create_index("email_key", unique=True)
    await db[SESSIONS].create_index("user_id")
    # MongoDB removes an ended session, and failure counts long forgotten (within its TTL
    # sweep, about a minute); the rules never rely on the sweep, they compare the dates.
    await db[SESSIONS].create_index("expires_at", expireAfterSeconds=0)
    for collection in (THROTTLE, ACCOUNT_FAILURES):
        await db[collection].create_index("last_failure", expireAfterSeconds=24 * 3600)
    await create_rate_limit_indexes(db)


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


async def find_failures(db: Database, collection: str, *, key: str) -> FailureCount | None:
    return cast(FailureCount | None, await db[collection].find_one({"_id": key}))


async def count_failure(
    db: Database, collection: str, *, key: str, now: datetime, forget_before: datetime
) -> FailureCount:
    """One more failed sign-in under `key`, counted from one when the last was before
    `forget_before`; the count as it is after."""
    while True:
        entry = await db[collection].find_one_and_update(
            {"_id": key, "last_failure": {"$gte": forget_before}},
            {"$inc": {"failures": 1}, "$set": {"last_failure": now}},
            return_document=ReturnDocument.AFTER,
        )
        if entry is not None:
            return cast(FailureCount, entry)
        try:
            # None recent: start again, replacing a forgotten one. When another request starts
            # it first, the upsert collides on _id and the loop counts this failure in theirs.
            await db[collection].update_one(
                {"_id": key, "last_failure": {"$lt": forget_before}},
                {"$set": {"failures": 1, "last_failure": now, "locked_until": None}},
                upsert=True,
            )
        except DuplicateKeyError:
            continue
        return {"_id": key, "failures": 1, "last_failure": now, "locked_until": None}


async def lock_until(db: Database, collection: str, *, key: str, until: datetime) -> None:
    await db[collection].update_one({"_id": key}, {"$set": {"locked_until": until}})


async def clear_failures(db: Database, collection: str, *, key: str) -> None:
    await db[collection].delete_one({"_id": key})


async def insert_session(db: Database, session: SessionDocument) -> None:
    await db[SESSIONS].insert_one(cast(Document, session))


async def find_session(db: Database, *, session_id: str) -> SessionDocument | None:
    return cast(SessionDocument | None, await db[SESSIONS].find_one({"_id": session_id}))


async def rotate_session(
    db: Database,
    *,
    session_id: str,
    token_sha256: str,
    new_token_sha256: str,
    now: datetime,
    lifetime: timedelta,
) -> SessionDocument | None:
    """Swap the session's refresh token for the new one and extend it, only if `token_sha256`
    is still its current token and it has not ended; None otherwise."""
    rotated = await db[SESSIONS].find_one_and_update(
        {"_id": session_id, "token_sha256": token_sha256, "expires_at": {"$gt": now}},
        {
            "$set": {
                "token_sha256": new_token_sha256,
                "refreshed_at": now,
                "expires_at": now + lifetime,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return cast(SessionDocument | None, rotated)


async def delete_session(db: Database, *, session_id: str) -> None:
    await db[SESSIONS].delete_one({"_id": session_id})


async def delete_sessions_of(db: Database, *, user_id: ObjectId) -> None:
    await db[SESSIONS].delete_many({"user_id": user_id})


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
