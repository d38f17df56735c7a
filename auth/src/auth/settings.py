"""auth's settings: the common ones plus the private key only auth holds."""

from typing import ClassVar

from common.settings import ServiceSettings
from pydantic import field_validator


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    deployment_env: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.deployment_env,
        "JWT_PRIVATE_KEY",
    )

    jwt_private_key: str
    session_lifetime_seconds: int = 3600
    # Failed sign-ins for one email before each further attempt must wait (doubling each time).
    signin_free_attempts: int = 5
    signin_max_lockout_seconds: int = 900

    @field_validator("jwt_private_key")
    @classmethod
    def _private_pem(cls, value: str) -> str:
        value = value.replace("\\n", "\n").strip() + "\n"
        if "PRIVATE KEY" not in value:
            raise ValueError("JWT_PRIVATE_KEY must be a PEM private key")
        return value
