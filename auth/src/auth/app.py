"""auth's app: create_app builds it (uvicorn --factory auth.app:create_app)."""

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from auth import repository
from auth.contract import CONTRACT
from auth.routes import router
from auth.runtime import AuthRuntime
from auth.settings import Settings


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    return create_service_app(
        contract=CONTRACT,
        runtime_type=AuthRuntime,
        settings=settings or Settings(),  # type: ignore[call-arg]
        routers=[router],
        outbox_collections=[repository.USERS],
        database=database,
        create_indexes=repository.create_indexes,
        snapshot=repository.snapshot,
    )
