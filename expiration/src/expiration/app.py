"""expiration's app: create_app builds it (uvicorn --factory expiration.app:create_app).

It serves only /healthz and /readyz (so it has no routes.py); its work is the listeners and the
scheduler.
"""

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from expiration import repository, service
from expiration.contract import CONTRACT
from expiration.runtime import ExpirationRuntime
from expiration.scheduler import run_scheduler
from expiration.settings import Settings


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    return create_service_app(
        contract=CONTRACT,
        runtime_type=ExpirationRuntime,
        settings=settings or Settings(),  # type: ignore[call-arg]
        routers=[],
        outbox_collections=[repository.EXPIRATIONS],
        database=database,
        create_indexes=repository.create_indexes,
        snapshot=repository.snapshot,
        background=[run_scheduler],
        metrics=service.refresh_metrics,
    )
