"""The skeleton of every data service: lifespan, database, bus, outbox relay, listeners."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI, Request
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from common.consumers import consumers_router, listener_runner, listeners_ready, stream_limits
from common.contract import ServiceContract
from common.errors import install_error_handlers
from common.health import ReadinessCheck, health_router
from common.logging import RequestLogContext, configure_logging
from common.messaging import Publisher, connect_bus, ensure_stream
from common.metrics import READY, HttpMetrics, metrics_router
from common.mongo import Database, DatabaseHandle
from common.outbox import Outbox, OutboxRelay
from common.request_guards import install_request_guards
from common.scrape import refresh_consumers, refresh_outbox
from common.settings import ServiceSettings
from common.shutdown import (
    CLOSE_RESERVE_SECONDS,
    RELAY_RESERVE_SECONDS,
    BoundedRequests,
    ShutdownClock,
    watch_signals,
    within,
)
from common.snapshot import SnapshotReader, snapshot_router
from common.telemetry import configure_tracing, flush, instrument_app

log = logging.getLogger("common.service")


S = TypeVar("S", bound=ServiceSettings)


@dataclass
class ServiceRuntime(Generic[S]):
    """What a running service holds: its settings, database, outbox and bus connections.

    Each service subclasses it with its own Settings (`class OrdersRuntime(ServiceRuntime[
    Settings])`) and with typed fields for whatever else it holds (payments' Stripe gateway).
    """

    settings: S
    contract: ServiceContract
    db: Database
    # Every write that announces events goes through it; it wakes the relay by itself.
    outbox: Outbox
    nc: NatsClient | None = None
    js: JetStreamContext | None = None
    publisher: Publisher | None = None
    relay: OutboxRelay | None = None


R = TypeVar("R", bound=ServiceRuntime[Any])


def freeze_startup_heap() -> bool:
    """Leave what startup built (modules, classes, the app, its validators: ~95,000 objects)
    out of the garbage collector's full passes; True the first time in a process.

    A full pass walked all of it to find the few cycles that requests and events leave behind:
    54 ms each on this machine, one every few hundred orders (bench/README.md, "Item 3, fifth
    pass"). What startup built lives as long as the process. Once per process: a test process
    starting many apps would otherwise keep every earlier app's garbage for good.
    """
    if gc.get_freeze_count():
        return False
    gc.collect()  # startup's own garbage is freed, not kept
    gc.freeze()
    return True


def create_service_app(
    *,
    contract: ServiceContract,
    settings: ServiceSettings,
    runtime_type: type[R],
    routers: Sequence[APIRouter],
    outbox_collections: Sequence[str] = (),
    database: Database | None = None,
    create_indexes: Callable[[Database], Awaitable[None]] | None = None,
    setup: Callable[[R], Awaitable[None]] | None = None,
    background: Sequence[Callable[[R], Coroutine[Any, Any, None]]] = (),
    larger_bodies: Mapping[str, int] | None = None,
    snapshot: SnapshotReader | None = None,
    metrics: Callable[[R], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app for one service.

    `runtime_type` is the service's ServiceRuntime subclass: what listeners, `setup` and
    `background` get. `database` injects a database (tests pass mongomock's); otherwise
    MONGO_URL decides.
    `create_indexes(db)` and then `setup(runtime)` run once the database is there;
    `background` tasks run until shutdown. Request bodies are limited to MAX_BODY_BYTES except
    on the exact paths `larger_bodies` gives their own limit.
    `snapshot` is served read-only on the service's own port for `make verify`
    (common.snapshot).
    `metrics(runtime)` sets the service's own scrape-time gauges before each GET /metrics
    (common.metrics), also served on the service's own port only.
    """

    clock = ShutdownClock(
        budget_seconds=settings.shutdown_seconds, request_seconds=settings.shutdown_request_seconds
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(contract.name, settings.log_level)
        clock.reset()
        handle = (
            DatabaseHandle(database) if database is not None else DatabaseHandle.connect(settings)
        )
        runtime = runtime_type(
            settings=settings,
            contract=contract,
            db=handle.database,
            outbox=Outbox(contract.publishes, service=contract.name),
        )
        app.state.runtime = runtime
        app.state.db = handle.database
        app.state.db_handle = handle
        if create_indexes is not None:
            await create_indexes(handle.database)
        if setup is not None:
            await setup(runtime)
        runtime.nc, runtime.js = await connect_bus(settings.nats_url, name=contract.name)
        await ensure_stream(
            runtime.js, replicas=settings.nats_stream_replicas, limits=stream_limits(settings)
        )
        runtime.publisher = Publisher(runtime.js)
        runtime.relay = OutboxRelay(
            [handle.database[name] for name in outbox_collections], runtime.publisher
        )
        runtime.outbox.attach(runtime.relay)
        runtime.relay.start()
        runner = await listener_runner(
            js=runtime.js,
            service=contract.name,
            listeners=[cls(runtime) for cls in contract.listeners],
            db=handle.database,
            settings=settings,
        )
        await runner.start()
        app.state.listeners = runner
        tasks = [asyncio.create_task(task(runtime)) for task in background]
        # From the signal on, listeners take no new messages while requests drain.
        clock.on_begin(runner.stop_fetching)
        restore_signals = watch_signals(clock)
        freeze_startup_heap()
        log.info("%s started", contract.name)
        try:
            yield
        finally:
            # Requests are answered by now (or were cut short at the request deadline). Stop
            # the work behind them within what is left of the budget: background tasks and
            # listeners first, as they write outbox entries, then the relay's last pass, then
            # the clients. Cancelling a background task is safe: each step it takes is one
            # single-document update, and a Stripe call is replayed with its idempotency key.
            clock.begin()
            for task in tasks:
                task.cancel()
            await within(
                clock.remaining(keep=RELAY_RESERVE_SECONDS + CLOSE_RESERVE_SECONDS),
                "background tasks",
                asyncio.gather(*tasks, return_exceptions=True),
            )
            await runner.stop(
                grace=clock.remaining(keep=RELAY_RESERVE_SECONDS + CLOSE_RESERVE_SECONDS)
            )
            await runtime.relay.stop(grace=clock.remaining(keep=CLOSE_RESERVE_SECONDS))
            await within(
                clock.remaining(keep=CLOSE_RESERVE_SECONDS / 2), "closing NATS", runtime.nc.close()
            )
            await within(clock.remaining(), "closing the database client", handle.close())
            restore_signals()
            flush()
            log.info("%s stopped %.2fs after shutdown began", contract.name, clock.elapsed())

    async def mongo_ready(request: Request) -> bool:
        handle: DatabaseHandle | None = getattr(request.app.state, "db_handle", None)
        return handle is not None and await handle.ping()

    async def nats_ready(request: Request) -> bool:
        runtime: ServiceRuntime[Any] | None = getattr(request.app.state, "runtime", None)
        return runtime is not None and runtime.nc is not None and runtime.nc.is_connected

    async def scrape(request: Request) -> None:
        runtime: R | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return
        for name, check in readiness.items():
            READY.labels(name).set(1 if await check(request) else 0)
        await refresh_outbox([runtime.db[name] for name in outbox_collections])
        runner = getattr(request.app.state, "listeners", None)
        if runner is not None:
            await refresh_consumers(runner)
        if metrics is not None:
            await metrics(runtime)

    readiness: dict[str, ReadinessCheck] = {
        "mongo": mongo_ready,
        "nats": nats_ready,
        "listeners": listeners_ready,
    }
    app = FastAPI(title=f"GitTix {contract.name}", lifespan=lifespan)
    app.state.settings = settings
    if configure_tracing(contract.name, settings.otel_exporter_otlp_endpoint):
        instrument_app(app)
    app.add_middleware(RequestLogContext)
    install_error_handlers(app)
    install_request_guards(
        app,
        max_body_bytes=settings.max_body_bytes,
        larger_bodies=larger_bodies,
        trusted_origins=settings.trusted_origins,
    )
    # Outside the guards, so what they refuse is counted too.
    app.add_middleware(HttpMetrics)
    # Outermost: once shutdown begins, every request in flight gets an answer in time.
    app.add_middleware(BoundedRequests, clock=clock)
    app.include_router(health_router(readiness))
    app.include_router(consumers_router())
    app.include_router(metrics_router(scrape))
    for router in routers:
        app.include_router(router)
    if snapshot is not None:
        app.include_router(snapshot_router(snapshot))
    return app


async def get_runtime(request: Request) -> ServiceRuntime[Any]:
    """The running service's runtime; a service declares its typed dependency with it:
    `RuntimeDep = Annotated[OrdersRuntime, Depends(get_runtime)]`. A coroutine so FastAPI runs
    it on the event loop, not on a worker thread."""
    runtime: ServiceRuntime[Any] = request.app.state.runtime
    return runtime
