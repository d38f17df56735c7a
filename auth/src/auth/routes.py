"""auth's HTTP routes under /api/users: signup, signin, signout, currentuser, password change."""

from datetime import timedelta

from common.auth import SESSION_COOKIE, CurrentUser, RequiredUser, sign_session
from common.mongo import DatabaseDep, parse_object_id
from fastapi import APIRouter, Response, status

from auth import service
from auth.models import (
    CurrentUserOut,
    PasswordChangeBody,
    SessionUser,
    SigninBody,
    SignupBody,
    UserDocument,
    UserOut,
)
from auth.runtime import RuntimeDep
from auth.settings import Settings

router = APIRouter(prefix="/api/users", tags=["users"])


def _start_session(response: Response, settings: Settings, user: UserDocument) -> UserOut:
    token = sign_session(
        user_id=str(user["_id"]),
        email=user["email"],
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
    return UserOut(id=str(user["_id"]), email=user["email"])


@router.post("/signup", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def signup(
    body: SignupBody, response: Response, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    user = await service.sign_up(db, runtime.outbox, email=body.email, password=body.password)
    return _start_session(response, runtime.settings, user)


@router.post("/signin", response_model=UserOut)
async def signin(
    body: SigninBody, response: Response, db: DatabaseDep, runtime: RuntimeDep
) -> UserOut:
    user = await service.sign_in(db, runtime.settings, email=body.email, password=body.password)
    return _start_session(response, runtime.settings, user)


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
    updated = await service.change_password(
        db,
        runtime.outbox,
        user_id=parse_object_id(user.id),
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return UserOut(id=str(updated["_id"]), email=updated["email"])
