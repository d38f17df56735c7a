"""auth's business rules: signing up, signing in (with its throttle), changing a password, and
the events each change announces. Routes call these; none of them knows HTTP.
"""

import math
from datetime import timedelta

from bson import ObjectId
from common.domain_errors import Conflict, Invalid, RateLimited, Unauthenticated
from common.events import UserCreated, UserUpdated
from common.mongo import Database
from common.outbox import Outbox
from common.types import utc_now

from auth import repository
from auth.models import UserDocument
from auth.passwords import hash_password, verify_password
from auth.settings import Settings

INVALID_CREDENTIALS = "Invalid credentials"


async def sign_up(db: Database, outbox: Outbox, *, email: str, password: str) -> UserDocument:
    """A user at version 0, announced by UserCreated in the same write; the email must be free."""
    user_id = ObjectId()
    user: UserDocument = {
        "_id": user_id,
        "email": email,
        "email_key": repository.email_key(email),
        "password": await hash_password(password),
        "version": 0,
    }
    event = UserCreated(id=str(user_id), email=email, version=0)
    if not await repository.insert_user(db, outbox, user, event):
        raise Conflict("Email in use", field="email")
    return user


async def sign_in(db: Database, settings: Settings, *, email: str, password: str) -> UserDocument:
    """The user these credentials name. Unknown email and wrong password get the same answer
    (and take as long); repeated failures for an email are slowed down."""
    key = repository.email_key(email)
    entry = await repository.find_throttle(db, key=key)
    now = utc_now()
    locked_until = entry.get("locked_until") if entry else None
    if locked_until is not None and locked_until > now:
        wait = max(1, math.ceil((locked_until - now).total_seconds()))
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {wait} seconds",
            retry_after_seconds=wait,
        )
    user = await repository.find_by_email(db, email=email)
    valid = await verify_password(password, user["password"] if user else None)
    if user is None or not valid:
        counted = await repository.count_failure(db, key=key, now=now)
        # Past the free attempts each failure doubles the wait (capped), so an attacker slows
        # guessing down but can never lock the owner out for longer than the cap.
        excess = counted["failures"] - settings.signin_free_attempts
        if excess >= 0:
            wait_seconds = min(2**excess, settings.signin_max_lockout_seconds)
            await repository.lock_until(db, key=key, until=now + timedelta(seconds=wait_seconds))
        raise Invalid(INVALID_CREDENTIALS)
    await repository.clear_throttle(db, key=key)
    return user


async def change_password(
    db: Database, outbox: Outbox, *, user_id: ObjectId, current_password: str, new_password: str
) -> UserDocument:
    """The new password as the user's next version, announced by UserUpdated in the same write;
    the current password must be right."""
    stored = await repository.find_by_id(db, user_id=user_id)
    if stored is None:
        raise Unauthenticated()
    if not await verify_password(current_password, stored["password"]):
        raise Invalid("Current password is incorrect", field="currentPassword")
    new_hash = await hash_password(new_password)
    while True:
        event = UserUpdated(
            id=str(stored["_id"]), email=stored["email"], version=stored["version"] + 1
        )
        updated = await repository.set_password(db, outbox, stored, new_hash, event)
        if updated is not None:
            return updated
        # Changed concurrently: apply on top of the newest version.
        fresh = await repository.find_by_id(db, user_id=user_id)
        if fresh is None:
            raise Unauthenticated()
        stored = fresh
