"""A started service keeps what its startup built out of the garbage collector's full passes."""

import gc
from typing import Any

from common.contract import ServiceContract
from common.service import ServiceRuntime, create_service_app, freeze_startup_heap
from common.settings import ServiceSettings
from gittix_testing import TestBus
from gittix_testing.app import running


def collected(thing: object) -> bool:
    """Whether the collector's passes still walk `thing` (frozen objects are in no generation)."""
    return any(tracked is thing for tracked in gc.get_objects())


async def test_startup_heap_is_frozen_once_per_process(
    service_env: dict[str, str], database: Any, bus: TestBus
) -> None:
    gc.unfreeze()  # another test in this process may have started a service first
    app = create_service_app(
        contract=ServiceContract(name="probe"),
        settings=ServiceSettings(),  # type: ignore[call-arg]
        runtime_type=ServiceRuntime,
        routers=[],
        database=database,
    )
    assert collected(app)
    async with running(app):
        assert not collected(app)
        assert not collected(app.state.runtime)
        # What comes after startup is collected as before; a second startup freezes nothing.
        later: list[object] = []
        assert collected(later)
        assert freeze_startup_heap() is False
        assert collected(later)
