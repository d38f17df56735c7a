"""Sessions: the JWT cookie, verified with the public key, and the current-user dependencies."""

import time
from collections import OrderedDict
from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict

from common.domain_errors import Unauthenticated
from common.types import utc_now

SESSION_COOKIE = "session"
ALGORITHMS = ["EdDSA"]
SESSION_LIFETIME = timedelta(hours=1)
# Sessions remembered as verified: a few thousand buyers' cookies, about 1 KB each (~4 MB).
VERIFIED_SESSIONS_CAPACITY = 4096


class UserPayload(BaseModel):
    """Who the session belongs to, as the JWT says."""

    # Frozen: one verified payload is handed to every request that sends the same cookie.
    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    iat: int
    exp: int


def sign_session(
    *, user_id: str, email: str, private_key: str, lifetime: timedelta = SESSION_LIFETIME
) -> str:
    """Mint a session token. Only auth holds the private key; tests sign with a test key."""
    now = utc_now()
    claims: dict[str, Any] = {
        "id": user_id,
        "email": email,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    return jwt.encode(claims, private_key, algorithm="EdDSA")


class VerifiedSessions:
    """Tokens already verified under a public key, least recently used evicted past `capacity`.

    Only tokens that passed the full check go in, keyed by the whole token string, so a
    token differing by one byte (forged, tampered, another key's) always takes the full
    check, and a stream of bad tokens neither grows the cache nor evicts anything. No lock:
    it is used from the event loop's one thread.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # (token, public key) -> the payload that token was verified to carry
        self._payloads: OrderedDict[tuple[str, str], UserPayload] = OrderedDict()

    def __len__(self) -> int:
        return len(self._payloads)

    def __contains__(self, entry: tuple[str, str]) -> bool:
        """Whether (token, public key) is remembered, whatever its expiry."""
        return entry in self._payloads

    def clear(self) -> None:
        self._payloads.clear()

    def get(self, token: str, public_key: str) -> UserPayload | None:
        """The payload of a token verified before and still unexpired, else None."""
        key = (token, public_key)
        payload = self._payloads.get(key)
        if payload is None:
            return None
        # The claims PyJWT checks against the clock, without leeway, as it does: valid while
        # now < exp, and not before iat (which only a clock set back could make fail).
        now = time.time()
        if not payload.iat <= now < payload.exp:
            del self._payloads[key]
            return None
        self._payloads.move_to_end(key)
        return payload

    def add(self, token: str, public_key: str, payload: UserPayload) -> None:
        self._payloads[(token, public_key)] = payload
        self._payloads.move_to_end((token, public_key))
        while len(self._payloads) > self.capacity:
            self._payloads.popitem(last=False)


verified_sessions = VerifiedSessions(VERIFIED_SESSIONS_CAPACITY)


@lru_cache(maxsize=8)
def _load_public_key(pem: str) -> Ed25519PublicKey:
    # Parsed once per PEM: given the PEM string, PyJWT parses it again on every decode.
    key = load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the session public key is not an Ed25519 key")
    return key


def verify_session(token: str, public_key: str) -> UserPayload | None:
    """The user a token names, or None when it is invalid, forged or expired."""
    cached = verified_sessions.get(token, public_key)
    if cached is not None:
        return cached
    try:
        claims = jwt.decode(
            token,
            _load_public_key(public_key),
            algorithms=ALGORITHMS,
            options={"require": ["exp", "iat"]},
        )
        payload = UserPayload.model_validate(claims)
    except (jwt.PyJWTError, ValueError):
        return None
    verified_sessions.add(token, public_key, payload)
    return payload


# The dependencies are coroutines, though they never wait: FastAPI runs a plain `def`
# dependency on a worker thread, two thread hand-offs per request for a check of ~0.1 ms.
async def current_user(request: Request) -> UserPayload | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return verify_session(token, request.app.state.settings.jwt_public_key)


async def require_user(request: Request) -> UserPayload:
    # Not a dependency on current_user: each level of dependencies costs FastAPI a solve per
    # request, and a route takes one or the other.
    user = await current_user(request)
    if user is None:
        raise Unauthenticated()
    return user


CurrentUser = Annotated[UserPayload | None, Depends(current_user)]
RequiredUser = Annotated[UserPayload, Depends(require_user)]
