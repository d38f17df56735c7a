"""The settings base every service extends: from the environment only, via pydantic-settings."""

from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from common.request_guards import DEFAULT_MAX_BODY_BYTES


def _pem(value: str | None) -> str | None:
    # Keys often arrive through env files with literal "\n" in place of newlines.
    if value is None:
        return None
    return value.replace("\\n", "\n").strip() + "\n"


class ShutdownSettings(BaseSettings):
    """How long a service may take to stop once told to (SIGTERM); see common.shutdown.

    The defaults keep a whole shutdown under 10 s, inside Kubernetes' grace period.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # SHUTDOWN_SECONDS: from the signal until every listener, background task, the outbox relay
    # and the clients have stopped; a watchdog ends the process 1 s after it.
    shutdown_seconds: float = Field(default=7.0, gt=0, le=30)
    # SHUTDOWN_REQUEST_SECONDS: how long requests in flight at the signal have to finish
    # before they are answered 503; the rest of the budget is for the background work.
    shutdown_request_seconds: float = Field(default=3.0, gt=0)

    @model_validator(mode="after")
    def _requests_leave_room(self) -> "ShutdownSettings":
        if self.shutdown_request_seconds > self.shutdown_seconds - 2:
            raise ValueError(
                "SHUTDOWN_REQUEST_SECONDS must leave at least 2 s of SHUTDOWN_SECONDS for "
                "listeners, the outbox relay and closing connections"
            )
        return self


class BusSettings(BaseSettings):
    """How listeners retry, give up and report, and how large the event stream may grow.

    docs/architecture.md ("Listeners: waiting, failing, dead letters" and "Stream limits") gives
    the reasoning and the arithmetic behind each default.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # LISTENER_FAILURE_BUDGET: real errors (not RetryLater) a message may cause before it is
    # written to the dead-letter stream and terminated.
    listener_failure_budget: int = Field(default=10, gt=0)
    # LISTENER_RETRY_BASE_SECONDS / LISTENER_RETRY_MAX_SECONDS: the redelivery delay doubles
    # from the base and is capped at the max, for waiting (RetryLater) and for errors alike.
    listener_retry_base_seconds: float = Field(default=0.2, gt=0)
    listener_retry_max_seconds: float = Field(default=5.0, gt=0)
    # LISTENER_WAIT_WARNING_SECONDS: an event still waiting for its predecessor this long after
    # it was published is reported (a warning, again every such period), never dropped.
    listener_wait_warning_seconds: float = Field(default=300.0, gt=0)
    # LISTENER_STALL_SECONDS: /readyz turns red when a consumer has not completed a fetch (or
    # finished a message) for this long. An idle consumer completes an empty fetch every
    # LISTENER_FETCH_SECONDS, so it must be at least twice that, or an idle consumer would be
    # called stalled.
    listener_stall_seconds: float = Field(default=30.0, ge=2)
    # LISTENER_ACK_WAIT_SECONDS: JetStream redelivers a message not acknowledged in this time;
    # a handler is cut short (and that counts as an error) at 80 % of it.
    listener_ack_wait_seconds: float = Field(default=30.0, gt=1)
    # LISTENER_FETCH_SECONDS: how long an idle consumer's pull request stays open at the server
    # (messages are handed over as they come, whatever it is). Each expiry wakes the service
    # and NATS, so it is long; a stop or a reconnect ends or renews it at once
    # (common.messaging.PullInbox).
    listener_fetch_seconds: float = Field(default=10.0, gt=0, le=60.0)
    # STREAM_MAX_AGE_SECONDS / STREAM_MAX_BYTES: the TICKETING stream's retention (7 days, 5 GiB:
    # a week at 100,000 orders a day with 1.5x headroom); when full, new publishes are refused
    # (discard policy New) and wait in the outboxes. With DEAD_LETTER_MAX_BYTES it must fit in
    # the NATS server's max_file_store (8 GB in infra/k8s/nats.conf; tests/infra checks it).
    stream_max_age_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    stream_max_bytes: int = Field(default=5 * 1024**3, gt=0)
    # STREAM_DUPLICATE_WINDOW_SECONDS: how long a republished event id is recognised and dropped.
    stream_duplicate_window_seconds: float = Field(default=600.0, gt=0)
    # DEAD_LETTER_MAX_BYTES: the dead-letter stream's size; when full, a message that should be
    # dead-lettered stays in its consumer and is retried instead.
    dead_letter_max_bytes: int = Field(default=512 * 1024**2, gt=0)

    @model_validator(mode="after")
    def _window_inside_retention(self) -> "BusSettings":
        if self.stream_duplicate_window_seconds > self.stream_max_age_seconds:
            raise ValueError(
                "STREAM_DUPLICATE_WINDOW_SECONDS must not exceed STREAM_MAX_AGE_SECONDS"
            )
        if self.listener_retry_base_seconds > self.listener_retry_max_seconds:
            raise ValueError(
                "LISTENER_RETRY_BASE_SECONDS must not exceed LISTENER_RETRY_MAX_SECONDS"
            )
        if self.listener_stall_seconds < 2 * self.listener_fetch_seconds:
            raise ValueError(
                "LISTENER_STALL_SECONDS must be at least twice LISTENER_FETCH_SECONDS (an idle "
                "consumer completes an empty fetch only that often)"
            )
        return self


class ServiceSettings(ShutdownSettings, BusSettings):
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
    # MAX_BODY_BYTES: the largest request body a route accepts; past it the answer is 413.
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    # TRUSTED_ORIGINS: comma-separated origins (https://host[:port]) of OTHER sites whose pages
    # may send state-changing requests; the page's own origin never needs listing.
    trusted_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # OTEL_EXPORTER_OTLP_ENDPOINT: where spans go over OTLP/HTTP (http://collector:4318);
    # unset, tracing is off and costs nothing (common.telemetry). The SDK's own OTEL_* settings
    # (OTEL_BSP_SCHEDULE_DELAY, OTEL_TRACES_SAMPLER...) apply as documented by OpenTelemetry.
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("jwt_public_key")
    @classmethod
    def _normalise_pem(cls, value: str) -> str:
        normalised = _pem(value)
        assert normalised is not None
        if "PUBLIC KEY" not in normalised:
            raise ValueError("JWT_PUBLIC_KEY must be a PEM public key")
        return normalised

    @field_validator("trusted_origins", mode="before")
    @classmethod
    def _origin_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @property
    def database_name(self) -> str:
        return self.mongo_database or self.service_name
