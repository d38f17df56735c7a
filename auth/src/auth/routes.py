"""auth's HTTP routes under /api/users: signup, signin, signout, currentuser, password change."""

import math
from datetime import timedelta
from typing import Annotated

from common.auth import SESSION_COOKIE, CurrentUser, RequiredUser, sign_session
from common.domain_errors import Invalid, RateLimited, Unauthenticated
from common.mongo import DatabaseDep, parse_object_id
from common.types import utc_now
from fastapi import APIRouter, Depends, Request, Response, status

from auth import repository
from auth.models import (
    CurrentUserOut,
    PasswordChangeBody,
    SessionUser,
    SigninBody,
    SignupBody,
    UserOut,
)
from auth.passwords import hash_password, verify_password
from auth.runtime import RuntimeDep
from auth.settings import Settings

router = APIRouter(prefix="/api/users", tags=["users"])

INVALID_CREDENTIALS = "Invalid credentials"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def _start_session(response: Response, settings: Settings, *, user_id: str, email: str) -> None:
    token = sign_session(
        user_id=user_id,
        email=email,
        private_key=settings.jwt_private_key,
        lifetime=timedelta(seconds=settings.session_lifetime_seconds),
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_lifetime_seconds,
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def signup(
    body: SignupBody,
    response: Response,
    db: DatabaseDep,
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> UserOut:
    user = await repository.create_user(
        db, runtime.outbox, email=body.email, password_hash=await hash_password(body.password)
    )
    _start_session(response, settings, user_id=str(user["_id"]), email=user["email"])
    return UserOut(id=str(user["_id"]), email=user["email"])


@router.post("/signin", response_model=UserOut)
async def signin(
    body: SigninBody, response: Response, db: DatabaseDep, settings: SettingsDep
) -> UserOut:
    locked_until = await repository.signin_locked_until(db, email=body.email)
    if locked_until is not None:
        wait = max(1, math.ceil((locked_until - utc_now()).total_seconds()))
        raise RateLimited(
            f"Too many failed sign-in attempts; try again in {wait} seconds",
            retry_after_seconds=wait,
        )
    user = await repository.find_by_email(db, email=body.email)
    valid = await verify_password(body.password, user["password"] if user else None)
    if user is None or not valid:
        await repository.record_failed_signin(
            db,
            email=body.email,
            free_attempts=settings.signin_free_attempts,
            max_lockout_seconds=settings.signin_max_lockout_seconds,
        )
        raise Invalid(INVALID_CREDENTIALS)
    await repository.clear_failed_signins(db, email=body.email)
    _start_session(response, settings, user_id=str(user["_id"]), email=user["email"])
    return UserOut(id=str(user["_id"]), email=user["email"])


@router.post("/signout")
async def signout(response: Response) -> dict[str, str]:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
    return {}


@router.get("/currentuser", response_model=CurrentUserOut)
async def currentuser(user: CurrentUser) -> CurrentUserOut:
    if user is None:
        return CurrentUserOut(currentUser=None)
    return CurrentUserOut(currentUser=SessionUser(**user.model_dump()))


@router.put("/currentuser/password", response_model=UserOut)
async def change_password(
    body: PasswordChangeBody, user: RequiredUser, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    stored = await repository.find_by_id(db, user_id=parse_object_id(user.id))
    if stored is None:
        raise Unauthenticated()
    if not await verify_password(body.current_password, stored["password"]):
        raise Invalid("Current password is incorrect", field="currentPassword")
    new_hash = await hash_password(body.new_password)
    updated = await repository.change_password(
        db, runtime.outbox, user=stored, password_hash=new_hash
    )
    while updated is None:  # changed concurrently: apply on top of the newest version
        stored = await repository.find_by_id(db, user_id=stored["_id"])
        assert stored is not None
        updated = await repository.change_password(
            db, runtime.outbox, user=stored, password_hash=new_hash
        )
    return UserOut(id=str(updated["_id"]), email=updated["email"])
