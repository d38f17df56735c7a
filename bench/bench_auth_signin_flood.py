"""auth under a flood of sign-ins with random emails (each one hashed, as a wrong password
would be): N at once through the HTTPS entry point to the real auth process, told the pod's
512 MiB limit. Prints auth's resident memory before, its peak (VmHWM) and after, how many
answers of each status, and how long the flood took. Figures, not pass/fail
(e2e/test_auth_load.py asserts the behaviour)."""

import argparse
import asyncio
import os
import platform
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from devserver.harness import running_system
from gittix_testing.processes import memory_mib

MIB = 1024 * 1024


async def flood(base_url: str, ca: Path, count: int) -> tuple[Counter[int], float]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(
        base_url=base_url, verify=str(ca), limits=limits, timeout=120
    ) as http:

        async def sign_in() -> int:
            body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "pw123456"}
            return (await http.post("/api/users/signin", json=body)).status_code

        started = time.perf_counter()
        statuses = await asyncio.gather(*(sign_in() for _ in range(count)))
        return Counter(statuses), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="sign-ins at once")
    parser.add_argument("--rounds", type=int, default=3, help="floods, one after another")
    args = parser.parse_args()
    env = {"SIGNIN_CLIENT_LIMIT": "1000000", "MEMORY_LIMIT_BYTES": str(512 * MIB)}
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.platform()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with (
        tempfile.TemporaryDirectory() as data_dir,
        running_system(Path(data_dir), env=env, services=frozenset({"auth"})) as system,
    ):
        pid = system.system.pids()["auth"]
        rss, _ = memory_mib(pid)
        print(f"auth at rest: {rss:.0f} MiB resident")
        for round_ in range(1, args.rounds + 1):
            statuses, seconds = asyncio.run(flood(system.base_url, system.ca_path, args.count))
            rss, peak = memory_mib(pid)
            answers = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
            print(
                f"round {round_}: {args.count} sign-ins in {seconds:.1f} s: {answers}; "
                f"auth {rss:.0f} MiB resident after, peak so far {peak:.0f} MiB"
            )


if __name__ == "__main__":
    main()
