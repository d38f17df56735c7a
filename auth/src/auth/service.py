"""auth's business rules: signing up, signing in (and how failures are throttled), sessions
(starting, refreshing, ending, and what a password change does to them), and the events each
change announces. Routes call these; none of them knows HTTP.
"""

import asyncio
import hashlib
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bson import ObjectId
from common.domain_errors import Conflict, Invalid, RateLimited, Unauthenticated
from common.events import UserCreated, UserUpdated
from common.metrics import SIGN_IN_THROTTLED
from common.mongo import Database
from common.outbox import Outbox
from common.rate_limit import RateLimit
from common.types import utc_now

from auth import repository
from auth.models import SessionDocument, UserDocument
from auth.passwords import PasswordHasher
from auth.settings import Settings

log = logging.getLogger("auth.service")

INVALID_CREDENTIALS = "Invalid credentials"
# The account-wide delay starts here and doubles with each failure past the free ones.
ACCOUNT_DELAY_BASE_SECONDS = 0.125


@dataclass(frozen=True)
class Session:
    """A device's session: who it is, and the refresh token only that device holds."""

    user: UserDocument
    refresh_token: str


# --- signing up and in ---------------------------------------------------------------------------


async def sign_up(
    db: Database,
    outbox: Outbox,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    email: str,
    password: str,
    client: str,
) -> Session:
    """A user at version 0, announced by UserCreated in the same write, signed in on this device;
    the email must be free, and each client may sign up only so often."""
    await RateLimit(
        "signup",
        limit=settings.signup_client_limit,
        window_seconds=settings.signup_client_window_seconds,
        message="Too many sign-ups from your address; try again later",
    ).hit(db, client)
    user_id = ObjectId()
    user: UserDocument = {
        "_id": user_id,
        "email": email,
        "email_key": repository.email_key(email),
        "password": await hasher.hash(password),
        "version": 0,
    }
    event = UserCreated(id=str(user_id), email=email, version=0)
    if not await repository.insert_user(db, outbox, user, event):
        raise Conflict("Email in use", field="email")
    return await _start_session(db, settings, user)


async def sign_in(
    db: Database,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    email: str,
    password: str,
    client: str,
) -> Session:
    """The user these credentials name, signed in on this device.

    Unknown email and wrong password get the same answer (and take as long). Failures are held
    against the one client that made them: after the free attempts that client waits (doubling,
    capped), while the owner on their own client is never refused because of it; across all
    clients, failures for the email only make its answers a little slower.
    """
    try:
        await RateLimit(
            "signin",
            limit=settings.signin_client_limit,
            window_seconds=settings.signin_client_window_seconds,
            message="Too many sign-in attempts from your address; try again later",
        ).hit(db, client)
    except RateLimited:
        SIGN_IN_THROTTLED.labels("client_limit").inc()
        raise
    now = utc_now()
    email_key = repository.email_key(email)
    # The client is part of the key, so a lock only ever holds back whoever made the failures.
    own_key = f"{email_key} {client}"
    forget_before = now - timedelta(seconds=settings.signin_failure_decay_seconds)
    own = await repository.find_failures(db, repository.THROTTLE, key=own_key)
    locked_until = own.get("locked_until") if own else None
    if locked_until is not None and locked_until > now:
        wait = max(1, math.ceil((locked_until - now).total_seconds()))
        SIGN_IN_THROTTLED.labels("account_locked").inc()
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {wait} seconds",
            retry_after_seconds=wait,
        )
    await _account_delay(db, settings, email_key=email_key, forget_before=forget_before)
    user = await repository.find_by_email(db, email=email)
    valid = await hasher.verify(password, user["password"] if user else None)
    if user is None or not valid:
        await _count_failure(db, settings, own_key=own_key, email_key=email_key, now=now)
        raise Invalid(INVALID_CREDENTIALS)
    await repository.clear_failures(db, repository.THROTTLE, key=own_key)
    return await _start_session(db, settings, user)


async def _account_delay(
    db: Database, settings: Settings, *, email_key: str, forget_before: datetime
) -> None:
    """Slow every answer for an email that many clients are failing on (a spray or a botnet),
    without refusing anyone: the owner still gets in, a little later."""
    account = await repository.find_failures(db, repository.ACCOUNT_FAILURES, key=email_key)
    if account is None or account["last_failure"] < forget_before:
        return
    excess = account["failures"] - settings.signin_account_free_failures
    if excess >= 0:
        delay = ACCOUNT_DELAY_BASE_SECONDS * 2 ** min(excess, 16)
        await asyncio.sleep(min(delay, settings.signin_account_delay_max_seconds))


async def _count_failure(
    db: Database, settings: Settings, *, own_key: str, email_key: str, now: datetime
) -> None:
    forget_before = now - timedelta(seconds=settings.signin_failure_decay_seconds)
    own = await repository.count_failure(
        db, repository.THROTTLE, key=own_key, now=now, forget_before=forget_before
    )
    excess = own["failures"] - settings.signin_free_attempts
    if excess >= 0:
        # Each failure past the free attempts doubles this client's wait, up to the cap.
        wait = min(
            settings.signin_first_lockout_seconds * 2 ** min(excess, 30),
            settings.signin_max_lockout_seconds,
        )
        await repository.lock_until(
            db, repository.THROTTLE, key=own_key, until=now + timedelta(seconds=wait)
        )
    await repository.count_failure(
        db, repository.ACCOUNT_FAILURES, key=email_key, now=now, forget_before=forget_before
    )


# --- sessions ------------------------------------------------------------------------------------


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _new_refresh_token(session_id: str) -> tuple[str, str]:
    """A refresh token for the session, and the digest of its secret that is stored."""
    secret = secrets.token_urlsafe(32)
    return f"{session_id}.{secret}", _sha256(secret)


async def _start_session(db: Database, settings: Settings, user: UserDocument) -> Session:
    now = utc_now()
    session_id = secrets.token_urlsafe(16)
    token, digest = _new_refresh_token(session_id)
    session: SessionDocument = {
        "_id": session_id,
        "user_id": user["_id"],
        "token_sha256": digest,
        "created_at": now,
        "refreshed_at": now,
        "expires_at": now + timedelta(seconds=settings.session_lifetime_seconds),
    }
    await repository.insert_session(db, session)
    return Session(user=user, refresh_token=token)


def _parse_refresh_token(token: str | None) -> tuple[str, str] | None:
    session_id, dot, secret = (token or "").partition(".")
    return (session_id, secret) if dot and session_id and secret else None


async def refresh(db: Database, settings: Settings, *, refresh_token: str | None) -> Session:
    """The session's next refresh token (the one presented is used up), for a fresh access
    token. A token of the session that was already used up means two holders: someone copied
    it. The session ends for both, and the device has to sign in again."""
    parsed = _parse_refresh_token(refresh_token)
    if parsed is None:
        raise Unauthenticated()
    session_id, secret = parsed
    now = utc_now()
    token, digest = _new_refresh_token(session_id)
    rotated = await repository.rotate_session(
        db,
        session_id=session_id,
        token_sha256=_sha256(secret),
        new_token_sha256=digest,
        now=now,
        lifetime=timedelta(seconds=settings.session_lifetime_seconds),
    )
    if rotated is None:
        stored = await repository.find_session(db, session_id=session_id)
        if stored is not None and stored["expires_at"] > now:
            log.warning("refresh token reused; session %s ended", session_id[:6])
            await repository.delete_session(db, session_id=session_id)
        raise Unauthenticated()
    user = await repository.find_by_id(db, user_id=rotated["user_id"])
    if user is None:
        raise Unauthenticated()
    return Session(user=user, refresh_token=token)


async def sign_out(db: Database, *, refresh_token: str | None) -> None:
    """End this device's session: its refresh token stops working at once, and its access
    token (which no service can recall) within its lifetime."""
    parsed = _parse_refresh_token(refresh_token)
    if parsed is None:
        return
    session_id, secret = parsed
    stored = await repository.find_session(db, session_id=session_id)
    # Only the holder of the current token ends a session by signing out.
    if stored is not None and secrets.compare_digest(stored["token_sha256"], _sha256(secret)):
        await repository.delete_session(db, session_id=session_id)


# --- changing the password -----------------------------------------------------------------------


async def change_password(
    db: Database,
    outbox: Outbox,
    hasher: PasswordHasher,
    settings: Settings,
    *,
    user_id: ObjectId,
    current_password: str,
    new_password: str,
) -> Session:
    """The new password as the user's next version, announced by UserUpdated in the same write;
    the current password must be right. Every session of the user ends (other devices are
    signed out) and this device gets a new one."""
    stored = await repository.find_by_id(db, user_id=user_id)
    if stored is None:
        raise Unauthenticated()
    if not await hasher.verify(current_password, stored["password"]):
        raise Invalid("Current password is incorrect", field="currentPassword")
    new_hash = await hasher.hash(new_password)
    while True:
        version = stored["version"] + 1
        event = UserUpdated(id=str(stored["_id"]), email=stored["email"], version=version)
        updated = await repository.set_password(db, outbox, stored, new_hash, event)
        if updated is not None:
            break
        # Changed concurrently: apply on top of the newest version.
        fresh = await repository.find_by_id(db, user_id=user_id)
        if fresh is None:
            raise Unauthenticated()
        stored = fresh
    await repository.delete_sessions_of(db, user_id=user_id)
    return await _start_session(db, settings, updated)
