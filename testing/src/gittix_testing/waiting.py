"""Waiting in a test: for a condition itself, until a deadline in seconds, never a loop count.

Prefer waiting on what announces the state (an event on the bus, an asyncio.Event); poll with
these only for state nothing announces (a consumer's counters, an emptied outbox, a port).
"""

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def wait_until(
    condition: Callable[[], Awaitable[T]], *, timeout: float, message: str, interval: float = ...
) -> T: ...
@overload
async def wait_until(
    condition: Callable[[], T], *, timeout: float, message: str, interval: float = ...
) -> T: ...
async def wait_until(
    condition: Callable[[], Awaitable[T] | T],
    *,
    timeout: float,
    message: str,
    interval: float = 0.02,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails the test with `message` (and the last value seen) once `timeout` seconds have passed,
    however fast or slow the machine is; a check that is itself stuck is cut short too.
    """
    last: object = None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                result = condition()
                last = await result if inspect.isawaitable(result) else result
                if last:
                    return last  # type: ignore[return-value]
                await asyncio.sleep(interval)
    except TimeoutError:
        if not deadline.expired():
            raise  # the check's own TimeoutError, not our deadline
        raise AssertionError(f"{message} (not within {timeout}s; last seen: {last!r})") from None


def wait_until_sync(
    condition: Callable[[], T],
    *,
    timeout: float,
    message: str,
    interval: float = 0.05,
    error: type[Exception] = AssertionError,
) -> T:
    """wait_until for code without an event loop (processes, threads); same contract.

    Outside a test's own checks (a process starting, under `make up` too) the deadline raises
    `error` instead, TimeoutError, so that its caller can say what did not start.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise error(f"{message} (not within {timeout}s; last seen: {last!r})")
        time.sleep(min(interval, remaining))


@asynccontextmanager
async def within(seconds: float, message: str) -> AsyncIterator[None]:
    """Bound one step (starting or stopping something): it fails with `message` when it takes
    longer than `seconds`, instead of leaving the test waiting."""
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            yield
    except TimeoutError:
        if not deadline.expired():
            raise
        raise AssertionError(f"{message} (not within {seconds}s)") from None
