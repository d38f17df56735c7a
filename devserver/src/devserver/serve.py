"""`make up`'s service processes: uvicorn serving a service's app factory, waking once a second.

uvicorn's server wakes ten times a second to refresh the Date header and to see whether it
should stop. On a small machine or VM each wake is a context switch that costs ~0.2 ms of CPU,
so six idle services spent ~12 ms of CPU a second on it (bench/README.md, "Services waking once
a second"). `QuietServer` refreshes the header once a second, as uvicorn's own loop does, and
wakes at once when a stop is asked for (SIGINT, SIGTERM), so stopping is as quick as before.
The container images keep uvicorn's own command line (one pod's ten wakes a second are nothing
beside its node's work).

    python -m devserver.serve orders.app:create_app --port 4003
"""

import argparse
import asyncio
import sys
from types import FrameType

import uvicorn

# uvicorn's main loop counts ticks of 0.1 s and refreshes the Date header every tenth one.
_TICKS_PER_WAKE = 10
_WAKE_SECONDS = 1.0


class QuietServer(uvicorn.Server):
    """uvicorn's server whose main loop wakes once a second, or at once to stop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_asked: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_asked = asyncio.Event()
        if self.should_exit:  # asked before the loop was there to hear it
            self._stop_asked.set()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + _TICKS_PER_WAKE) % 864000
            try:
                async with asyncio.timeout(_WAKE_SECONDS):
                    await self._stop_asked.wait()
            except TimeoutError:
                pass
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler runs between two bytecodes of whatever the loop was doing: the
        # event is set from the loop itself.
        if self._loop is not None and self._stop_asked is not None:
            self._loop.call_soon_threadsafe(self._stop_asked.set)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("factory", help="module:function building the ASGI app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--timeout-keep-alive", type=int, default=5)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        args.factory,
        factory=True,
        host=args.host,
        port=args.port,
        timeout_keep_alive=args.timeout_keep_alive,
        access_log=False,
    )
    QuietServer(config).run()


if __name__ == "__main__":
    main(sys.argv[1:])
