"""orders' app: create_app builds it (uvicorn --factory orders.app:create_app)."""

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from orders import repository
from orders.contract import CONTRACT
from orders.routes import router
from orders.runtime import OrdersRuntime
from orders.settings import Settings


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    return create_service_app(
        contract=CONTRACT,
        runtime_type=OrdersRuntime,
        settings=settings or Settings(),  # type: ignore[call-arg]
        routers=[router],
        outbox_collections=[repository.ORDERS],
        database=database,
        create_indexes=repository.create_indexes,
        snapshot=repository.snapshot,
    )
