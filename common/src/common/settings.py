"""The settings base every service extends: from the environment only, via pydantic-settings."""

from typing import ClassVar

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _pem(value: str | None) -> str | None:
    # Keys often arrive through env files with literal "\n" in place of newlines.
    if value is None:
        return None
    return value.replace("\\n", "\n").strip() + "\n"


class ServiceSettings(BaseSettings):
    """What every service needs: where its database and the bus are, and how to verify sessions.

    `MONGO_URL` unset means the embedded in-memory store (development and tests only).
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: ClassVar[str] = "service"
    # Environment variables a Kubernetes Deployment of this service must set.
    deployment_env: ClassVar[tuple[str, ...]] = ("MONGO_URL", "NATS_URL", "JWT_PUBLIC_KEY")

    mongo_url: str | None = None
    mongo_database: str | None = None
    nats_url: str = "nats://127.0.0.1:4222"
    jwt_public_key: str
    log_level: str = "INFO"
    # Stream replicas: 1 on a laptop, 3 on the Kubernetes NATS cluster.
    nats_stream_replicas: int = 1

    @field_validator("jwt_public_key")
    @classmethod
    def _normalise_pem(cls, value: str) -> str:
        normalised = _pem(value)
        assert normalised is not None
        if "PUBLIC KEY" not in normalised:
            raise ValueError("JWT_PUBLIC_KEY must be a PEM public key")
        return normalised

    @property
    def database_name(self) -> str:
        return self.mongo_database or self.service_name
