"""auth's HTTP routes under /api/users: signup, signin, refresh, signout, currentuser, password
change. Two cookies: the short-lived access token every service reads (`session`, path /), and
the refresh token only auth reads (`refresh`, path /api/users)."""

from datetime import timedelta
from ipaddress import ip_address

from common.auth import SESSION_COOKIE, CurrentUser, RequiredUser, sign_session
from common.mongo import DatabaseDep, parse_object_id
from fastapi import APIRouter, Request, Response, status

from auth import service
from auth.models import (
    CurrentUserOut,
    PasswordChangeBody,
    SessionUser,
    SigninBody,
    SignupBody,
    UserOut,
)
from auth.runtime import RuntimeDep
from auth.settings import Settings

PREFIX = "/api/users"
REFRESH_COOKIE = "refresh"

router = APIRouter(prefix=PREFIX, tags=["users"])


def client_address(request: Request, settings: Settings) -> str:
    """Who is asking: the last X-Forwarded-For entry when the request comes from the trusted
    entry point (which sets it from the connection it accepted), else the connection's peer.
    Anyone else's X-Forwarded-For is ignored: a client could write anything there."""
    peer = request.client.host if request.client else ""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and _is_trusted(peer, settings):
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer


def _is_trusted(peer: str, settings: Settings) -> bool:
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in settings.trusted_proxies)


def _set_session(response: Response, settings: Settings, session: service.Session) -> UserOut:
    user_id, email = str(session.user["_id"]), session.user["email"]
    access = sign_session(
        user_id=user_id,
        email=email,
        private_key=settings.jwt_private_key,
        lifetime=timedelta(seconds=settings.access_token_seconds),
    )
    response.set_cookie(
        SESSION_COOKIE,
        access,
        max_age=settings.access_token_seconds,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )
    response.set_cookie(
        REFRESH_COOKIE,
        session.refresh_token,
        max_age=settings.session_lifetime_seconds,
        path=PREFIX,
        secure=True,
        httponly=True,
        samesite="lax",
    )
    return UserOut(id=user_id, email=email)


def _clear_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    response.delete_cookie(REFRESH_COOKIE, path=PREFIX, secure=True, httponly=True, samesite="lax")


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def signup(
    body: SignupBody, request: Request, response: Response, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    session = await service.sign_up(
        db,
        runtime.outbox,
        runtime.hasher,
        runtime.settings,
        email=body.email,
        password=body.password,
        client=client_address(request, runtime.settings),
    )
    return _set_session(response, runtime.settings, session)


@router.post("/signin", response_model=UserOut)
async def signin(
    body: SigninBody, request: Request, response: Response, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    session = await service.sign_in(
        db,
        runtime.hasher,
        runtime.settings,
        email=body.email,
        password=body.password,
        client=client_address(request, runtime.settings),
    )
    return _set_session(response, runtime.settings, session)


@router.post("/refresh", response_model=UserOut)
async def refresh(
    request: Request, response: Response, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    """A new access token (and the next refresh token) for the session this device holds."""
    session = await service.refresh(
        db, runtime.settings, refresh_token=request.cookies.get(REFRESH_COOKIE)
    )
    return _set_session(response, runtime.settings, session)


@router.post("/signout")
async def signout(request: Request, response: Response, db: DatabaseDep) -> dict[str, str]:
    await service.sign_out(db, refresh_token=request.cookies.get(REFRESH_COOKIE))
    _clear_session(response)
    return {}


@router.get("/currentuser", response_model=CurrentUserOut)
async def currentuser(user: CurrentUser) -> CurrentUserOut:
    if user is None:
        return CurrentUserOut(currentUser=None)
    return CurrentUserOut(currentUser=SessionUser(**user.model_dump()))


@router.put("/currentuser/password", response_model=UserOut)
async def change_password(
    body: PasswordChangeBody,
    user: RequiredUser,
    response: Response,
    db: DatabaseDep,
    runtime: RuntimeDep,
) -> UserOut:
    session = await service.change_password(
        db,
        runtime.outbox,
        runtime.hasher,
        runtime.settings,
        user_id=parse_object_id(user.id),
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return _set_session(response, runtime.settings, session)
