"""Bounded shutdown: from SIGTERM, a service answers what is in flight and exits within a budget.

The clock starts when SIGTERM (or SIGINT) reaches the server, or when the lifespan ends without
one (tests). From then on:

1. HTTP: uvicorn stops accepting connections and waits for the requests in flight. A request
   still running `SHUTDOWN_REQUEST_SECONDS` after the signal is cut short and answered 503 in
   the common error format. Its work is left as a crash would leave it, which every flow already
   survives: each write is one single-document update, and an interrupted Stripe attempt is
   replayed with the same idempotency key.
2. The lifespan (see common.service): listeners stop fetching and finish the message in hand or
   give it back for redelivery, background tasks are cancelled, the outbox relay makes a last
   pass, and the bus and database clients are closed, each step bounded by what is left.
3. If the process is somehow still alive `SHUTDOWN_SECONDS` + 1 s after the signal, a watchdog
   thread ends it, so an orchestrator never has to wait for its own kill.
"""

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import error_response

log = logging.getLogger("common.shutdown")

SHUTTING_DOWN_MESSAGE = "The service is restarting; please try again"
# Past the budget, the watchdog waits this much longer before ending the process outright.
WATCHDOG_GRACE_SECONDS = 1.0
WATCHDOG_EXIT_CODE = 70  # EX_SOFTWARE
# The end of the budget is kept for the outbox relay's last pass and then closing the clients.
RELAY_RESERVE_SECONDS = 1.5
CLOSE_RESERVE_SECONDS = 0.5
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownClock:
    """When shutdown began, and the deadlines that follow from the budget."""

    def __init__(self, *, budget_seconds: float, request_seconds: float) -> None:
        self.budget_seconds = budget_seconds
        self.request_seconds = request_seconds
        self.started: float | None = None  # the event loop's clock
        self._on_begin: list[Callable[[], None]] = []
        self._request_timeouts: set[asyncio.Timeout] = set()

    @property
    def shutting_down(self) -> bool:
        return self.started is not None

    def reset(self) -> None:
        """Ready for another run of the same app (tests start one app more than once)."""
        self.started = None
        self._on_begin.clear()

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.started

    def on_begin(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) as soon as shutdown begins."""
        self._on_begin.append(callback)

    def begin(self) -> None:
        """Start the clock; later calls keep the first start."""
        if self.started is not None:
            return
        self.started = asyncio.get_running_loop().time()
        log.info(
            "shutting down: requests have %.1fs, everything %.1fs",
            self.request_seconds,
            self.budget_seconds,
        )
        for timeout in self._request_timeouts:
            if not timeout.expired():
                timeout.reschedule(self.request_deadline)
        for callback in self._on_begin:
            callback()

    @property
    def request_deadline(self) -> float | None:
        return None if self.started is None else self.started + self.request_seconds

    @property
    def deadline(self) -> float | None:
        return None if self.started is None else self.started + self.budget_seconds

    def remaining(self, *, keep: float = 0.0) -> float:
        """Seconds left of the budget, less `keep` held back for later steps (never negative)."""
        if self.started is None:
            return max(self.budget_seconds - keep, 0.0)
        left = self.started + self.budget_seconds - asyncio.get_running_loop().time()
        return max(left - keep, 0.0)

    def track_request(self, timeout: asyncio.Timeout) -> None:
        self._request_timeouts.add(timeout)

    def forget_request(self, timeout: asyncio.Timeout) -> None:
        self._request_timeouts.discard(timeout)


async def within(seconds: float, step: str, work: Awaitable[Any]) -> bool:
    """Run one shutdown step for at most `seconds`; False (and a log line) if it was cut short."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.warning("shutdown: %s did not finish within %.1fs; cut short", step, seconds)
        return False
    except Exception:
        log.exception("shutdown: %s failed", step)
        return False
    return True


class BoundedRequests:
    """ASGI middleware: once shutdown begins, a request has until the request deadline.

    A request cut short before it started its response is answered 503 (and asked to close the
    connection), so every request in flight at SIGTERM gets an answer.
    """

    def __init__(self, app: ASGIApp, *, clock: ShutdownClock) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        timeout = asyncio.timeout_at(self.clock.request_deadline)
        self.clock.track_request(timeout)
        try:
            async with timeout:
                await self.app(scope, receive, watched_send)
        except TimeoutError:
            if not timeout.expired() or response_started:
                raise
            log.warning(
                "shutdown: %s %s cut short and answered 503", scope["method"], scope["path"]
            )
            response = error_response(503, [{"message": SHUTTING_DOWN_MESSAGE}])
            response.headers["Connection"] = "close"
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
        finally:
            self.clock.forget_request(timeout)


def watch_signals(clock: ShutdownClock) -> Callable[[], None]:
    """Start the clock when the server is told to stop; returns a function that undoes this.

    uvicorn handles SIGTERM and SIGINT itself (it stops accepting, waits for requests, then
    runs the lifespan's shutdown); this wraps its handler so the clock starts at the signal,
    not after the requests are done. Without a server's handler (tests, a non-main thread)
    nothing is installed and the clock starts when the lifespan ends.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two bytecodes of the loop's thread: hand over to the
        # loop rather than touch its state from here.
        loop.call_soon_threadsafe(clock.begin)
        arm_watchdog(clock.budget_seconds + WATCHDOG_GRACE_SECONDS)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)

    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, on_signal)

    def restore() -> None:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is on_signal:
                signal.signal(signum, handler)

    return restore


_watchdog: threading.Timer | None = None


def arm_watchdog(seconds: float) -> None:
    """End the process `seconds` from now unless it has exited by then (armed once)."""
    global _watchdog
    if _watchdog is not None:
        return

    def expire() -> None:
        log.error("shutdown took longer than %.1fs; exiting now", seconds)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stderr.flush()
        os._exit(WATCHDOG_EXIT_CODE)

    _watchdog = threading.Timer(seconds, expire)
    _watchdog.daemon = True
    _watchdog.start()
