"""What one sign-in's password check costs auth: argon2id with auth's own parameters
(auth.passwords), CPU time and wall time per verification, one at a time and MAX_CONCURRENCY at
once on auth's bounded pool. An input of docs/capacity.md (auth replicas per sign-ins/s).
Figures, not pass/fail."""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from auth import passwords

PASSWORD = "correct horse battery staple"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="verifications per run")
    args = parser.parse_args()
    hasher = PasswordHash(
        (
            Argon2Hasher(
                memory_cost=passwords.MEMORY_KIB,
                time_cost=passwords.TIME_COST,
                parallelism=passwords.PARALLELISM,
            ),
        )
    )
    stored = hasher.hash(PASSWORD)
    print(
        f"machine: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; argon2id m={passwords.MEMORY_KIB // 1024} MiB "
        f"t={passwords.TIME_COST} p={passwords.PARALLELISM}"
    )
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.count):
        hasher.verify(PASSWORD, stored)
    cpu_ms = (time.process_time() - cpu) / args.count * 1000
    wall_ms = (time.perf_counter() - wall) / args.count * 1000
    print(f"one at a time: {cpu_ms:.1f} ms CPU, {wall_ms:.1f} ms wall per verification")
    workers = passwords.MAX_CONCURRENCY
    with ThreadPoolExecutor(workers) as pool:
        cpu, wall = time.process_time(), time.perf_counter()
        list(pool.map(lambda _: hasher.verify(PASSWORD, stored), range(args.count)))
        cpu_ms = (time.process_time() - cpu) / args.count * 1000
        rate = args.count / (time.perf_counter() - wall)
    print(f"{workers} at once: {cpu_ms:.1f} ms CPU per verification, {rate:.1f} verifications/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
