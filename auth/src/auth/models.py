"""auth's request and response bodies."""

import re

from common.types import CamelModel
from pydantic import BaseModel, ConfigDict, field_validator

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _valid_password(value: str) -> str:
    if not 8 <= len(value) <= 128:
        raise ValueError("Password must be between 8 and 128 characters")
    return value


class Credentials(CamelModel):
    email: str
    password: str

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if len(value) > 254 or not EMAIL_PATTERN.match(value):
            raise ValueError("Email must be valid")
        return value


class SignupBody(Credentials):
    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        return _valid_password(value)


class SigninBody(Credentials):
    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        if not value:
            raise ValueError("You must supply a password")
        return value


class PasswordChangeBody(CamelModel):
    current_password: str
    new_password: str

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
