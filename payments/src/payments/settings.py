"""payments' settings: the common ones plus the Stripe key, API base and client limits."""

from typing import ClassVar

from common.settings import ServiceSettings
from pydantic import field_validator


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "payments"
    deployment_env: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.deployment_env,
        "STRIPE_SECRET_KEY",
    )

    stripe_secret_key: str
    # Unset means Stripe itself; `make up` and tests point it at localstripe.
    stripe_api_base: str | None = None
    # Per-request timeout and the SDK's own retries (it reuses the idempotency key for them).
    stripe_timeout_seconds: float = 20.0
    stripe_max_network_retries: int = 2
    # The webhook endpoint's signing secret (whsec_...): Stripe's dashboard on a cluster (make
    # k8s-secrets), make up's data dir locally. Unset: every webhook request is refused (400).
    stripe_webhook_secret: str | None = None
    # How often stale charge attempts and owed refunds are looked at again.
    payments_sweep_seconds: float = 5.0

    @field_validator("stripe_secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("sk_", "rk_")):
            raise ValueError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_... or rk_...)")
        return value

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None and not value.startswith("whsec_"):
            raise ValueError("STRIPE_WEBHOOK_SECRET must be a webhook signing secret (whsec_...)")
        return value

    @property
    def stripe_attempt_seconds(self) -> float:
        """The longest one charge attempt can take, retries included: its lease on the charge."""
        return self.stripe_timeout_seconds * (self.stripe_max_network_retries + 1) + 5.0
