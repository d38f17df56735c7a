"""payments' app: create_app builds it (uvicorn --factory payments.app:create_app)."""

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from payments import repository
from payments.contract import CONTRACT
from payments.routes import router
from payments.runtime import PaymentsRuntime
from payments.settings import Settings
from payments.stripe_gateway import StripeGateway
from payments.sweeper import run_sweeper


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]

    async def setup(runtime: PaymentsRuntime) -> None:
        runtime.gateway = StripeGateway(settings)

    return create_service_app(
        contract=CONTRACT,
        runtime_type=PaymentsRuntime,
        settings=settings,
        routers=[router],
        outbox_collections=[repository.CHARGES],
        database=database,
        create_indexes=repository.create_indexes,
        snapshot=repository.snapshot,
        setup=setup,
        background=[run_sweeper],
    )
