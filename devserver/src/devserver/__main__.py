"""`python -m devserver` (what `make up` runs): the whole system on this machine until Ctrl-C."""

import signal
import sys
import threading
from types import FrameType

from devserver.system import PortInUseError, StartupError, System, SystemConfig


def main() -> int:
    config = SystemConfig.from_environment()
    system = System(config)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return
        stopping.set()
        # Raised in the main thread wherever it is, so a start in progress is abandoned too.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        system.start()
        print(system.banner(), flush=True)
        while not stopping.wait(1.0):
            system.report_exits()
    except PortInUseError as error:
        print(
            f"devserver: {error}; stop whatever uses it, or choose another port "
            "(TICKETING_HTTPS_PORT for the entry point)",
            file=sys.stderr,
            flush=True,
        )
        return 1
    except StartupError as error:
        print(f"devserver: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        # Ignore further signals while children are being stopped: a second Ctrl-C must not
        # abandon the shutdown half-way and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("devserver: stopping every process", file=sys.stderr, flush=True)
        system.stop()
        print("devserver: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
