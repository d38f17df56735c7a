"""Keep every core busy for a bounded time, so tests can be run on a machine that is not idle.

`make test-stress` starts this beside the suites and stops it when they are done; it also stops
by itself after --seconds, and with the process that started it, so it never outlives its use.
"""

import argparse
import ctypes
import multiprocessing
import os
import signal
import sys
import time


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spin(until: float) -> None:
    die_with_parent()
    count = 0
    while time.monotonic() < until:
        count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3600.0, help="stop after this long")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    die_with_parent()
    until = time.monotonic() + args.seconds
    workers = [
        multiprocessing.Process(target=spin, args=(until,), daemon=True)
        for _ in range(args.workers)
    ]
    # SIGTERM ends the workers too (daemon children are terminated when this process exits).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for worker in workers:
        worker.start()
    print(f"burning {args.workers} core(s) for at most {args.seconds:.0f}s", flush=True)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()
