"""tickets' app: create_app builds it (uvicorn --factory tickets.app:create_app)."""

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from tickets import repository
from tickets.contract import CONTRACT
from tickets.routes import router
from tickets.runtime import TicketsRuntime
from tickets.settings import Settings


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    return create_service_app(
        contract=CONTRACT,
        runtime_type=TicketsRuntime,
        settings=settings or Settings(),  # type: ignore[call-arg]
        routers=[router],
        outbox_collections=[repository.TICKETS],
        database=database,
        create_indexes=repository.create_indexes,
        snapshot=repository.snapshot,
    )
