"""Password hashing (argon2id via pwdlib), on a bounded pool of threads so that memory is bounded.

Each argon2id hash or verification holds `MEMORY_KIB` of memory while it runs. Hashes run on
their own pool of `concurrency` threads (never more at once, so never more than concurrency x
19 MiB, and no idle thread of a larger shared pool keeps a freed arena); up to `queue` more wait
for a thread, for at most `queue_wait_seconds`; past that the answer is 503 with Retry-After,
which costs the process nothing.
"""

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from common.domain_errors import Unavailable
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# OWASP's first argon2id configuration: m = 19 MiB, t = 2, p = 1 (docs/security.md weighs it
# against the pod's memory limit). Hashes made with other parameters (pwdlib's old defaults,
# 64 MiB) still verify: the parameters are stored in each hash.
MEMORY_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
# What one hash really costs the process: the argon2 matrix plus the thread's stack and slack.
BYTES_PER_HASH = (MEMORY_KIB + 1024) * 1024
# What the process needs besides hashing (interpreter, FastAPI, the Mongo and NATS clients,
# buffers for requests in flight), measured at ~110 MiB and rounded up with headroom.
BASELINE_BYTES = 192 * 1024 * 1024
# More threads than this only make each hash slower (two cores per pod at most).
MAX_CONCURRENCY = 8
# Where a cgroup v2 container's memory limit is ("max" when it has none).
CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")
BUSY_MESSAGE = "Too many sign-ins at once; try again in a moment"
BUSY_RETRY_AFTER_SECONDS = 1

T = TypeVar("T")

_hasher = PasswordHash(
    (Argon2Hasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM),)
)
# Verified against when the email is unknown, so that answer takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password-just-for-timing")


def container_memory_limit(path: Path = CGROUP_MEMORY_MAX) -> int | None:
    """The container's memory limit in bytes from its cgroup, or None when there is none."""
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return int(value) if value.isdigit() else None


def concurrency_for(memory_limit_bytes: int) -> int:
    """How many hashes may run at once within `memory_limit_bytes` (at least one)."""
    room = (memory_limit_bytes - BASELINE_BYTES) // BYTES_PER_HASH
    return max(1, min(MAX_CONCURRENCY, room))


class PasswordHasher:
    """Hashes and verifies passwords, at most `concurrency` at once."""

    def __init__(self, *, concurrency: int, queue: int, queue_wait_seconds: float) -> None:
        self.concurrency = concurrency
        self._queue = queue
        self._queue_wait = queue_wait_seconds
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting = 0

    async def hash(self, password: str) -> str:
        return await self._run(_hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` matches; with no hash (unknown email) as slow as a wrong one."""
        if password_hash is None:
            await self._run(_hasher.verify, password, _DUMMY_HASH)
            return False
        return await self._run(_hasher.verify, password, password_hash)

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self._queue:
            raise Unavailable(BUSY_MESSAGE, retry_after_seconds=BUSY_RETRY_AFTER_SECONDS)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._queue_wait):
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable(BUSY_MESSAGE, retry_after_seconds=BUSY_RETRY_AFTER_SECONDS) from None
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        running = loop.run_in_executor(self._pool, functools.partial(work, *args))
        # The slot is given back when the thread is done, not when the request gives up on it
        # (a cancelled request's hash still runs to its end and still holds its memory).
        running.add_done_callback(lambda _: self._slots.release())
        return await asyncio.shield(running)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
