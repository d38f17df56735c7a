"""Before pytest-timeout ends a stuck test, print where every asyncio task is waiting.

pytest-timeout prints every thread's stack, but a stuck async test shows only the event loop
idling in select(); what is stuck is a task (a listener loop, a lifespan shutdown, a fixture's
teardown). This prints each unfinished task's stack to the real stderr a second earlier.
"""

import asyncio
import sys
import threading
from asyncio import tasks as asyncio_tasks
from collections.abc import Iterator

import pytest

# How long before pytest-timeout's own report this one is printed.
LEAD_SECONDS = 1.0


def timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def print_pending_tasks(nodeid: str) -> None:
    out = sys.__stderr__
    if out is None:
        return
    # Python 3.11 keeps every task in _all_tasks; 3.12+ splits them into two sets.
    registries = [
        getattr(asyncio_tasks, name, ())
        for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks")
    ]
    pending: list[asyncio.Task[object]] = []
    for registry in registries:
        for _ in range(3):  # the set can change under us while the loop runs; try again
            try:
                pending += [task for task in list(registry) if not task.done()]
                break
            except RuntimeError:
                continue
    print(
        f"\n===== {nodeid} is about to time out: {len(pending)} asyncio task(s) pending", file=out
    )
    for task in pending:
        print(f"--- {task!r}", file=out)
        task.print_stack(file=out)
    out.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    timeout = timeout_of(item)
    timer = None
    if timeout > LEAD_SECONDS:
        timer = threading.Timer(timeout - LEAD_SECONDS, print_pending_tasks, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
