"""auth's request and response bodies, and the documents it stores."""

import re
from datetime import datetime
from typing import NotRequired, TypedDict

from bson import ObjectId
from common.mongo import Document
from common.types import CamelModel
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import JsonDict

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 128
# The schemas say what the validators accept, so a client built from the OpenAPI sends nothing
# they refuse (found by fuzzing it); the validators keep their own messages.
EMAIL_SCHEMA: JsonDict = {"maxLength": EMAIL_MAX_LENGTH, "pattern": EMAIL_PATTERN.pattern}
NEW_PASSWORD_SCHEMA: JsonDict = {"minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH}


# --- the stored documents ------------------------------------------------------------------------


class UserDocument(TypedDict):
    """A user (collection `users`); `email_key` is the email as compared (unique)."""

    _id: ObjectId
    email: str
    email_key: str
    password: str
    version: int
    # Events written but not yet published (common.outbox).
    outbox: NotRequired[list[Document]]


class FailureCount(TypedDict):
    """Recent failed sign-ins under one key (collections `signin_throttle`: an email from one
    client, with its lock; `signin_account_failures`: an email from every client)."""

    _id: str
    failures: int
    last_failure: datetime
    locked_until: NotRequired[datetime | None]


class SessionDocument(TypedDict):
    """A signed-in device (collection `sessions`): the refresh token family it holds.

    Only the current refresh token's SHA-256 is kept; presenting an older one of the family
    means it was copied, and ends the session.
    """

    _id: str
    user_id: ObjectId
    token_sha256: str
    created_at: datetime
    refreshed_at: datetime
    # The store removes the session once this has passed (a TTL index).
    expires_at: datetime


# --- HTTP bodies ---------------------------------------------------------------------------------


def _valid_password(value: str) -> str:
    if not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        raise ValueError(
            f"Password must be between {PASSWORD_MIN_LENGTH} and {PASSWORD_MAX_LENGTH} characters"
        )
    return value


class Credentials(CamelModel):
    email: str = Field(json_schema_extra=EMAIL_SCHEMA)
    password: str

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if len(value) > EMAIL_MAX_LENGTH or not EMAIL_PATTERN.match(value):
            raise ValueError("Email must be valid")
        return value


class SignupBody(Credentials):
    password: str = Field(json_schema_extra=NEW_PASSWORD_SCHEMA)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _valid_password(value)


class SigninBody(Credentials):
    password: str = Field(json_schema_extra={"minLength": 1})

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        if not value:
            raise ValueError("You must supply a password")
        return value


class PasswordChangeBody(CamelModel):
    current_password: str
    new_password: str = Field(json_schema_extra=NEW_PASSWORD_SCHEMA)

    @field_validator("new_password")
    @classmethod
    def _new_password(cls, value: str) -> str:
        return _valid_password(value)


class UserOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    email: str


class SessionUser(BaseModel):
    id: str
    email: str
    iat: int
    exp: int


class CurrentUserOut(BaseModel):
    currentUser: SessionUser | None
