"""A service's consumers as it runs them: built from its settings, in /readyz, on /consumers."""

from typing import Any

from fastapi import APIRouter, Request
from nats.js import JetStreamContext

from common.deadletter import DEAD_LETTER_STREAM
from common.failures import FAILURES_COLLECTION, FailureLedger
from common.messaging import (
    STREAM_NAME,
    ConsumerPolicy,
    Listener,
    ListenerRunner,
    StreamLimits,
)
from common.mongo import Database
from common.settings import BusSettings


def stream_limits(settings: BusSettings) -> StreamLimits:
    return StreamLimits(
        max_age_seconds=settings.stream_max_age_seconds,
        max_bytes=settings.stream_max_bytes,
        duplicate_window_seconds=settings.stream_duplicate_window_seconds,
        dead_letter_max_bytes=settings.dead_letter_max_bytes,
    )


def consumer_policy(settings: BusSettings) -> ConsumerPolicy:
    return ConsumerPolicy(
        failure_budget=settings.listener_failure_budget,
        retry_base_seconds=settings.listener_retry_base_seconds,
        retry_max_seconds=settings.listener_retry_max_seconds,
        wait_warning_seconds=settings.listener_wait_warning_seconds,
        stall_seconds=settings.listener_stall_seconds,
        ack_wait_seconds=settings.listener_ack_wait_seconds,
        fetch_seconds=settings.listener_fetch_seconds,
    )


async def listener_runner(
    *,
    js: JetStreamContext,
    service: str,
    listeners: list[Listener[Any, Any]],
    db: Database,
    settings: BusSettings,
) -> ListenerRunner:
    """The service's runner, its failures counted in its own database (not started yet)."""
    ledger = FailureLedger(db[FAILURES_COLLECTION])
    await ledger.create_indexes()
    return ListenerRunner(js, service, listeners, ledger, policy=consumer_policy(settings))


def _runner(request: Request) -> ListenerRunner | None:
    return getattr(request.app.state, "listeners", None)


async def listeners_ready(request: Request) -> bool:
    """Red until the listeners run, and while any consumer has stalled (see ListenerRunner)."""
    runner = _runner(request)
    return runner is not None and not runner.stalled()


async def streams(js: JetStreamContext) -> dict[str, Any]:
    """How full each stream is (the alert on the event stream fires well before it refuses
    publishes) and how many dead letters wait for someone."""
    report: dict[str, Any] = {}
    for name in (STREAM_NAME, DEAD_LETTER_STREAM):
        try:
            info = await js.stream_info(name)
        except Exception as error:
            report[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        max_bytes = info.config.max_bytes or 0
        report[name] = {
            "messages": info.state.messages,
            "bytes": info.state.bytes,
            "max_bytes": max_bytes,
            "used_fraction": info.state.bytes / max_bytes if max_bytes > 0 else None,
        }
    return report


def consumers_router() -> APIRouter:
    """GET /consumers on the service's own port (the entry point routes only /api/*): each
    consumer's pending, ack-pending and redelivered counts from NATS, this process's counters
    (acked, waiting, failed, dead-lettered, restarts, seconds since progress), and how full the
    event and dead-letter streams are."""
    router = APIRouter(include_in_schema=False)

    @router.get("/consumers")
    async def consumers(request: Request) -> dict[str, Any]:
        runner = _runner(request)
        if runner is None:
            return {"consumers": [], "stalled": [], "streams": {}}
        return {
            "consumers": await runner.lag(),
            "stalled": runner.stalled(),
            "streams": await streams(runner.js),
        }

    return router
