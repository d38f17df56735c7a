"""Each service's Deployment gives it every setting it needs, and listens and probes where the
app really serves. Computed from the services' own Settings classes and app factories."""

import asyncio
import copy
import importlib
from typing import ClassVar

import httpx
import pytest
from common.settings import ServiceSettings
from devserver.routing import SERVICES
from fastapi import FastAPI
from infra_checks import (
    Manifest,
    env_problems,
    find,
    main_container,
    port_problems,
    required_env,
    resolved_env,
    settings_class,
)

SERVICE_NAMES = [service.name for service in SERVICES]


def service_settings(service: str) -> type:
    try:
        return settings_class(service)
    except ImportError as error:
        pytest.fail(f"{service}.settings cannot be imported (is the service written yet?): {error}")


def app_from_deployment_env(
    service: str,
    objects: list[Manifest],
    secrets: list[Manifest],
    monkeypatch: pytest.MonkeyPatch,
) -> FastAPI:
    """The app as uvicorn --factory builds it in the pod: only the Deployment's environment."""
    settings = service_settings(service)
    env = resolved_env(service, objects, secrets)
    for name in required_env(settings) | set(env):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    settings()  # raises if the Deployment's environment does not satisfy the service
    module_name, _, factory_name = next(s.factory for s in SERVICES if s.name == service).partition(
        ":"
    )
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except ImportError as error:
        pytest.fail(f"{module_name} cannot be imported (is the service written yet?): {error}")
    app = factory()
    assert isinstance(app, FastAPI)
    return app


def probe_statuses(app: FastAPI, deployment: Manifest) -> dict[str, int]:
    """The status the app answers each probe path with (no lifespan: no database or bus, so
    readiness may fail; an unknown path still answers 404)."""
    container = main_container(deployment)
    paths = {"/healthz", "/readyz"} | {
        str(container[p]["httpGet"]["path"]).split("?")[0]
        for p in ("startupProbe", "livenessProbe", "readinessProbe")
        if "httpGet" in container.get(p, {})
    }

    async def ask() -> dict[str, int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://pod") as client:
            return {path: (await client.get(path)).status_code for path in sorted(paths)}

    return asyncio.run(ask())


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_deployment_sets_every_setting_the_service_requires(
    service: str, base_objects: list[Manifest]
) -> None:
    assert env_problems(service, base_objects, required_env(service_settings(service))) == []


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_service_starts_from_its_deployment_and_serves_its_probes(
    service: str,
    base_objects: list[Manifest],
    cluster_secrets: list[Manifest],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = app_from_deployment_env(service, base_objects, cluster_secrets, monkeypatch)
    deployment = find(base_objects, "Deployment", service)
    assert deployment is not None
    statuses = probe_statuses(app, deployment)
    # Liveness must not depend on Mongo or NATS: it answers 200 even with neither there.
    assert statuses["/healthz"] == 200
    served = {path for path, status in statuses.items() if status != 404}
    assert port_problems(service, base_objects, served) == []


def test_a_removed_env_var_is_reported(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    auth = find(broken, "Deployment", "auth")
    assert auth is not None
    container = main_container(auth)
    container["env"] = [e for e in container["env"] if e["name"] != "JWT_PRIVATE_KEY"]
    assert env_problems("auth", broken, required_env(service_settings("auth"))) == [
        "auth: the Deployment does not set JWT_PRIVATE_KEY, which the service needs"
    ]


def test_an_env_var_from_the_shared_config_is_required_too(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    for obj in broken:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"].startswith("ticketing-config"):
            del obj["data"]["NATS_STREAM_REPLICAS"]
    problems = env_problems("tickets", broken, {"NATS_STREAM_REPLICAS", "MONGO_URL"})
    assert problems == [
        "tickets: the Deployment does not set NATS_STREAM_REPLICAS, which the service needs"
    ]


def test_a_new_required_setting_is_required_in_the_deployment(
    base_objects: list[Manifest],
) -> None:
    class WithNewSecret(ServiceSettings):
        # A field with no default: the service cannot start without it.
        deployment_env: ClassVar[tuple[str, ...]] = ServiceSettings.deployment_env
        webhook_secret: str

    assert "WEBHOOK_SECRET" in required_env(WithNewSecret)
    assert "payments: the Deployment does not set WEBHOOK_SECRET, which the service needs" in (
        env_problems("payments", base_objects, required_env(WithNewSecret))
    )


def test_a_wrong_port_or_probe_path_is_reported(base_objects: list[Manifest]) -> None:
    served = {"/healthz", "/readyz", "/api/orders"}
    broken = copy.deepcopy(base_objects)
    orders = find(broken, "Deployment", "orders")
    assert orders is not None
    container = main_container(orders)
    container["ports"][0]["containerPort"] = 8080
    container["readinessProbe"]["httpGet"]["path"] = "/ready"
    problems = port_problems("orders", broken, served)
    assert "orders: container ports [8080], the app listens on 8000" in problems
    assert "orders: readinessProbe asks /ready, expected /readyz" in problems
    assert "orders: readinessProbe path /ready is not served by the app" in problems
    assert "orders: livenessProbe port http is not the app's" in problems

    broken = copy.deepcopy(base_objects)
    service = find(broken, "Service", "orders")
    assert service is not None
    service["spec"]["ports"][0]["targetPort"] = "web"
    assert port_problems("orders", broken, served) == [
        "orders: Service port 80 misses the container"
    ]


def test_a_probe_path_the_app_does_not_serve_is_reported(base_objects: list[Manifest]) -> None:
    problems = port_problems("expiration", base_objects, {"/healthz"})
    assert problems == ["expiration: readinessProbe path /readyz is not served by the app"]


def test_a_secret_make_k8s_secrets_does_not_create_is_reported(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    broken = copy.deepcopy(base_objects)
    payments = find(broken, "Deployment", "payments")
    assert payments is not None
    for item in main_container(payments)["env"]:
        if item["name"] == "STRIPE_SECRET_KEY":
            item["valueFrom"]["secretKeyRef"]["key"] = "api-key"
    with pytest.raises(LookupError, match="Secret stripe key api-key"):
        resolved_env("payments", broken, cluster_secrets)
