"""End-to-end fixtures: the whole system, started exactly as `make up` starts it, on free ports.

Use the `system` fixture (see devserver.harness.RunningSystem):

    SYSTEM_ENV = {"ORDER_EXPIRATION_SECONDS": "3"}   # optional: extra env for every service
    SYSTEM_SERVICES = {"auth", "tickets", "orders"}   # optional: only these (each must exist)

A module that sets neither runs on one system shared with every other such module (started
once per session: a start costs seconds of CPU); it must leave the system as it found it, with
each service running and its settings unchanged, and look only at the data it made. A module
that stops, kills or restarts services, or wants a system of its own, sets either, or defines
its own `system` fixture (as test_shutdown does).

    async def test_signup(system: RunningSystem) -> None:
        async with system.client() as browser:          # HTTPS, trusts the dev CA, own cookies
            response = await browser.post("/api/users/signup", json={...})

    system.restart("expiration") / system.kill("expiration") + system.start("expiration")
    # these block until the service is ready; in an async test that must keep its event loop
    # running meanwhile: await asyncio.to_thread(system.restart, "expiration")
    system.base_url (alias url), system.ca_path (alias ca_cert), system.nats_url,
    system.service_url("orders")
    system.log("orders")  # what that process printed; every log is under system.data_dir/logs

The `stream` fixture is the system's event stream, recorded from its beginning (a TestBus:
`await stream.wait_for(OrderCreated, id=...)`).

Without SYSTEM_SERVICES, services whose app module does not exist yet are skipped, as `make up`
skips them (`system.services` lists those running). When a test fails, the tail of every
process's output is attached to its report.
"""

from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from devserver.harness import RunningSystem, running_system
from gittix_testing.bus import EventRecorder, TestBus, subscribe_recorder

LOG_TAIL_LINES = 60
# Every browser and client of a test comes from 127.0.0.1, one client address to auth: its
# per-client sign-up and sign-in limits would otherwise stop a module's later users. A module
# testing those limits sets its own in SYSTEM_ENV.
CLIENT_LIMITS = {"SIGNUP_CLIENT_LIMIT": "100000", "SIGNIN_CLIENT_LIMIT": "100000"}


@pytest.fixture(scope="session")
def shared_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """Every service with the default settings, for the modules that ask for nothing else."""
    with running_system(
        tmp_path_factory.mktemp("shared-system"), env=dict(CLIENT_LIMITS)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    """The running system for this test module: the shared one, or (with SYSTEM_ENV or
    SYSTEM_SERVICES) its own, with its state in a fresh temporary data dir."""
    extra_env = getattr(request.module, "SYSTEM_ENV", None)
    only = getattr(request.module, "SYSTEM_SERVICES", None)
    if extra_env is None and only is None:
        yield request.getfixturevalue("shared_system")
        return
    env = {**CLIENT_LIMITS, **(extra_env or {})}
    data_dir = tmp_path_factory.mktemp("system")
    with running_system(
        data_dir, env=env, services=frozenset(only) if only is not None else None
    ) as running:
        yield running


@pytest.fixture
async def stream(system: RunningSystem) -> AsyncIterator[TestBus]:
    """The running system's event stream, watched from its beginning (nothing is reset)."""
    nc = await nats.connect(system.nats_url)
    js = nc.jetstream()
    recorder = EventRecorder()
    subscription = await subscribe_recorder(js, recorder)
    yield TestBus(url=system.nats_url, nc=nc, js=js, recorder=recorder)
    await subscription.unsubscribe()
    await nc.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("system")
    if report.failed and isinstance(running, RunningSystem):
        for path in sorted((running.data_dir / "logs").glob("*.log")):
            if path.name == "system.log":
                continue
            tail = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            report.sections.append(
                (f"{path.stem} log (last {LOG_TAIL_LINES} lines)", "\n".join(tail))
            )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep test_make_up's tests in file order, whatever order pytest-randomly gives the rest:
    they share one `make up` run, which the SIGTERM test ends."""
    positions = [index for index, item in enumerate(items) if item.path.name == "test_make_up.py"]
    in_file_order = sorted((items[index] for index in positions), key=lambda item: item.location[1])
    for index, item in zip(positions, in_file_order, strict=True):
        items[index] = item
