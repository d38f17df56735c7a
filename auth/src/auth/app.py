"""auth's app: create_app builds it (uvicorn --factory auth.app:create_app)."""

import logging

from common.mongo import Database
from common.service import create_service_app
from fastapi import FastAPI

from auth import repository
from auth.contract import CONTRACT
from auth.passwords import PasswordHasher, concurrency_for, container_memory_limit
from auth.routes import router
from auth.runtime import AuthRuntime
from auth.settings import Settings

log = logging.getLogger("auth.app")
# The pod's limit (infra/k8s/auth/deployment.yaml), assumed when neither the setting nor the
# cgroup says.
DEFAULT_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024


async def _setup(runtime: AuthRuntime) -> None:
    settings = runtime.settings
    limit = settings.memory_limit_bytes or container_memory_limit() or DEFAULT_MEMORY_LIMIT_BYTES
    concurrency = settings.hash_concurrency or concurrency_for(limit)
    runtime.hasher = PasswordHasher(
        concurrency=concurrency,
        queue=settings.hash_queue,
        queue_wait_seconds=settings.hash_queue_wait_seconds,
    )
    log.info(
        "password hashing: %d at once within %d MiB, %d more may wait",
        concurrency,
        limit // 2**20,
        settings.hash_queue,
    )


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    return create_service_app(
        contract=CONTRACT,
        runtime_type=AuthRuntime,
        settings=settings or Settings(),  # type: ignore[call-arg]
        routers=[router],
        outbox_collections=[repository.USERS],
        database=database,
        create_indexes=repository.create_indexes,
        setup=_setup,
        snapshot=repository.snapshot,
    )
