"""auth under a flood of sign-ins it must hash (unknown emails are hashed too, so that answer
takes as long as a wrong password): 200 at once with random emails, through the entry point, to
the real auth process given the pod's 512 MiB limit. It stays under the limit (peak resident
memory, VmHWM), and answers each with 400, or 503 + Retry-After when its hashing queue is full:
never another 5xx. Figures (peak, how many of each) are in bench/README.md
(bench/bench_auth_signin_flood.py)."""

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
from devserver.harness import RunningSystem

MIB = 1024 * 1024
POD_LIMIT_BYTES = 512 * MIB
SIGN_INS = 200
SYSTEM_SERVICES = {"auth"}
SYSTEM_ENV = {
    # The hashing bound is what is under test here, not the per-client throttle (every request
    # comes from this one test's address).
    "SIGNIN_CLIENT_LIMIT": "100000",
    "MEMORY_LIMIT_BYTES": str(POD_LIMIT_BYTES),
}


def peak_resident_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "VmHWM":
            return int(value.split()[0]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


async def test_200_concurrent_sign_ins_stay_under_the_memory_limit_with_no_5xx_but_503(
    system: RunningSystem,
) -> None:
    pid = system.system.pids()["auth"]
    limits = httpx.Limits(max_connections=SIGN_INS, max_keepalive_connections=SIGN_INS)
    async with system.client(limits=limits, timeout=120) as http:

        async def sign_in() -> httpx.Response:
            body = {"email": f"{uuid.uuid4().hex}@example.com", "password": "pw123456"}
            return await http.post("/api/users/signin", json=body)

        responses = await asyncio.gather(*(sign_in() for _ in range(SIGN_INS)))

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {400, 429, 503}, statuses
    assert statuses[400] > 0, "no sign-in was hashed and answered"
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
            assert response.json()["errors"][0]["message"]
    assert peak_resident_bytes(pid) < POD_LIMIT_BYTES
    # Still answering afterwards.
    async with system.client() as http:
        assert (await http.get("/api/users/currentuser")).status_code == 200
