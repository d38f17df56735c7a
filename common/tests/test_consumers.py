"""A service's consumers seen from outside: /readyz red while one is stuck; /consumers shows lag."""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar

import httpx
import pytest
from common.contract import ServiceContract
from common.events import Envelope, TicketCreated
from common.messaging import Listener
from common.service import ServiceRuntime, create_service_app
from common.settings import ServiceSettings
from gittix_testing import TestBus
from gittix_testing.app import http_client, running
from gittix_testing.waiting import wait_until

DURABLE = "probe-ticket-created-v1"


class GateListener(Listener[TicketCreated, ServiceRuntime[ServiceSettings]]):
    """Handles nothing until the test opens the gate (a handler stuck on its database)."""

    event = TicketCreated
    gate: ClassVar[asyncio.Event]
    handled: ClassVar[list[str]]

    async def handle(self, event: TicketCreated, envelope: Envelope) -> None:
        await self.gate.wait()
        self.handled.append(event.id)


@pytest.fixture
async def service(
    service_env: dict[str, str], database: Any, bus: TestBus
) -> AsyncIterator[httpx.AsyncClient]:
    GateListener.gate = asyncio.Event()
    GateListener.handled = []
    app = create_service_app(
        contract=ServiceContract(name="probe", listeners=(GateListener,)),
        settings=ServiceSettings(  # type: ignore[call-arg]
            listener_stall_seconds=2.0, listener_fetch_seconds=1.0
        ),
        runtime_type=ServiceRuntime,
        routers=[],
        database=database,
    )
    async with running(app), http_client(app) as client:
        yield client
    GateListener.gate.set()


def ticket(number: int) -> TicketCreated:
    return TicketCreated(id=f"t{number}", version=0, title="Gig", price=Decimal("5"), user_id="u")


async def readiness(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status_code, response.json()["checks"]


async def test_readyz_is_red_while_a_consumer_is_stuck_and_green_again_after(
    service: httpx.AsyncClient, bus: TestBus
) -> None:
    assert await readiness(service) == (200, {"mongo": True, "nats": True, "listeners": True})

    await bus.publish(ticket(1))
    status, checks = await wait_until(
        lambda: _red(service), timeout=10, message="/readyz never turned red"
    )
    assert (status, checks["listeners"], checks["nats"]) == (503, False, True)

    GateListener.gate.set()
    await wait_until(
        lambda: _green(service), timeout=10, message="/readyz never turned green again"
    )
    assert GateListener.handled == ["t1"]


async def _red(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]] | None:
    status, checks = await readiness(client)
    return (status, checks) if status == 503 else None


async def _green(client: httpx.AsyncClient) -> bool:
    return (await readiness(client))[0] == 200


async def test_consumers_shows_each_consumers_lag_and_counters(
    service: httpx.AsyncClient, bus: TestBus
) -> None:
    for number in range(4):
        await bus.publish(ticket(number))

    async def lagging() -> dict[str, Any] | None:
        body = (await service.get("/consumers")).json()
        [consumer] = body["consumers"]
        return consumer if consumer["stalled"] else None

    stuck = await wait_until(lagging, timeout=10, message="the consumer never showed as stalled")
    assert stuck["consumer"] == DURABLE and stuck["subject"] == TicketCreated.subject
    assert stuck["pending"] + stuck["ack_pending"] == 4
    assert stuck["ack_pending"] >= 1 and stuck["counters"]["acked"] == 0

    GateListener.gate.set()

    async def caught_up() -> dict[str, Any] | None:
        [consumer] = (await service.get("/consumers")).json()["consumers"]
        # The server counts an ack after the listener has sent it: the server's side of the
        # report (pending, ack_pending) can lag the listener's own counter for a moment.
        server_done = consumer["pending"] == 0 and consumer["ack_pending"] == 0
        return consumer if consumer["counters"]["acked"] == 4 and server_done else None

    done = await wait_until(caught_up, timeout=10, message="the consumer never caught up")
    assert (done["pending"], done["ack_pending"], done["stalled"]) == (0, 0, False)
    assert done["counters"]["restarts"] == 0 and done["counters"]["dead_lettered"] == 0
    body = (await service.get("/consumers")).json()
    events = body["streams"]["TICKETING"]
    assert events["messages"] == 4 and events["bytes"] > 0
    assert events["used_fraction"] == pytest.approx(events["bytes"] / events["max_bytes"])
    assert body["streams"]["TICKETING_DLQ"]["messages"] == 0
