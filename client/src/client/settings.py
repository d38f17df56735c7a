"""client's settings: only what the pages need (the client holds no database and no bus)."""

from typing import ClassVar

from common.settings import ShutdownSettings
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict


class Settings(ShutdownSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: ClassVar[str] = "client"
    # Nothing is required: without a publishable key the order page offers Stripe's test cards.
    deployment_env: ClassVar[tuple[str, ...]] = ()

    stripe_publishable_key: str | None = None
    # Where Stripe.js comes from. With a publishable key, Stripe's own unless set; in test-card
    # mode it is what runs the 3-D Secure challenge (make up: localstripe's stand-in), and the
    # 3-D Secure test card is offered only when it is set.
    stripe_js_url: str | None = None
    log_level: str = "INFO"

    @field_validator("stripe_publishable_key")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        # An empty STRIPE_PUBLISHABLE_KEY= in an env file means "test mode", not a key "".
        if value is None or not value.strip():
            return None
        if not value.startswith("pk_"):
            raise ValueError("STRIPE_PUBLISHABLE_KEY must be a Stripe publishable key (pk_...)")
        return value.strip()

    @field_validator("stripe_js_url")
    @classmethod
    def _blank_url_is_unset(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("STRIPE_JS_URL must be https:// (or http:// on this machine)")
        return value.strip()

    @property
    def stripe_js(self) -> str | None:
        """The Stripe.js the order page loads, if any."""
        if self.stripe_js_url:
            return self.stripe_js_url
        return "https://js.stripe.com/v3/" if self.stripe_publishable_key else None
