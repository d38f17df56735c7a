"""auth's settings: the common ones, the private key only auth holds, and its abuse limits."""

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, ClassVar

from common.settings import ServiceSettings
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

# The local entry point (Caddy under `make up`) connects from the loopback address.
LOCAL_PROXIES = "127.0.0.1/32,::1/128"


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "auth"
    deployment_env: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.deployment_env,
        "JWT_PRIVATE_KEY",
    )

    jwt_private_key: str
    # SESSION_LIFETIME_SECONDS: how long a session lasts without being used (each refresh of
    # its access token extends it); ACCESS_TOKEN_SECONDS: how long one access token is good for,
    # and so how long a signed-out or replaced session may still be accepted by a service.
    session_lifetime_seconds: int = Field(default=3600, gt=0)
    access_token_seconds: int = Field(default=60, gt=0, le=60)

    # Failed sign-ins for one email from one client before each further attempt from that
    # client must wait (doubling each time, capped); the count is forgotten after
    # SIGNIN_FAILURE_DECAY_SECONDS without a failure.
    signin_free_attempts: int = Field(default=5, gt=0)
    # The first wait; each further failure doubles it.
    signin_first_lockout_seconds: int = Field(default=1, gt=0)
    signin_max_lockout_seconds: int = Field(default=900, gt=0)
    signin_failure_decay_seconds: int = Field(default=900, gt=0)
    # Failures for one email from all clients together past which every sign-in for it is
    # answered a little later (never refused): up to SIGNIN_ACCOUNT_DELAY_MAX_SECONDS.
    signin_account_free_failures: int = Field(default=10, gt=0)
    signin_account_delay_max_seconds: float = Field(default=2.0, ge=0)
    # Sign-in attempts (any email) and sign-ups per client address per window.
    signin_client_limit: int = Field(default=30, gt=0)
    signin_client_window_seconds: int = Field(default=300, gt=0)
    signup_client_limit: int = Field(default=10, gt=0)
    signup_client_window_seconds: int = Field(default=3600, gt=0)
    # TRUSTED_PROXIES: the addresses (or networks) of the entry point; only a request from one
    # of them is believed about the client's address (the last X-Forwarded-For entry).
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=lambda: _networks(LOCAL_PROXIES)
    )

    # MEMORY_LIMIT_BYTES: the container's memory limit, which sizes how many password hashes
    # run at once; default the cgroup's memory.max, else 512 MiB (the pod's limit).
    memory_limit_bytes: int | None = Field(default=None, gt=0)
    # HASH_CONCURRENCY overrides that sizing; HASH_QUEUE hashes may wait for a thread, each for
    # at most HASH_QUEUE_WAIT_SECONDS, before the answer is 503 with Retry-After.
    hash_concurrency: int | None = Field(default=None, gt=0)
    hash_queue: int = Field(default=16, ge=0)
    hash_queue_wait_seconds: float = Field(default=2.0, gt=0)

    @field_validator("jwt_private_key")
    @classmethod
    def _private_pem(cls, value: str) -> str:
        value = value.replace("\\n", "\n").strip() + "\n"
        if "PRIVATE KEY" not in value:
            raise ValueError("JWT_PRIVATE_KEY must be a PEM private key")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        return _networks(value) if isinstance(value, str) else value


def _networks(value: str) -> list[IPv4Network | IPv6Network]:
    return [ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]
