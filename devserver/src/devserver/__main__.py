"""`python -m devserver` (what `make up` runs): the whole system on this machine until Ctrl-C."""

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devserver.supervisor import PortInUseError, StartupError
from devserver.system import System, SystemConfig


def _service_port(value: str) -> tuple[str, int]:
    name, _, port = value.partition("=")
    if not name or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT, got {value!r}")
    return name, int(port)


def parse_config(argv: list[str] | None = None) -> SystemConfig:
    """`make up` passes no arguments: TICKETING_DATA_DIR / TICKETING_HTTPS_PORT or defaults.

    The flags exist so tests (and a developer with busy ports) can move every listener.
    """
    config = SystemConfig.from_environment()
    parser = argparse.ArgumentParser(prog="python -m devserver", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=config.data_dir)
    parser.add_argument("--https-port", type=int, default=config.https_port)
    parser.add_argument("--nats-port", type=int, default=config.nats_port)
    parser.add_argument("--stripe-port", type=int, default=config.stripe_port)
    parser.add_argument("--mongo-port", type=int, default=config.mongo_port)
    parser.add_argument(
        "--service-port", type=_service_port, action="append", default=[], metavar="NAME=PORT"
    )
    args = parser.parse_args(argv)
    config.data_dir = args.data_dir.resolve()
    config.https_port = args.https_port
    config.nats_port = args.nats_port
    config.stripe_port = args.stripe_port
    config.mongo_port = args.mongo_port
    config.service_ports = dict(args.service_port)
    return config


def main(argv: list[str] | None = None) -> int:
    system = System(parse_config(argv))
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
        if system.children:
            print("devserver: stopping every process", file=sys.stderr, flush=True)
            system.stop()
            print("devserver: stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
