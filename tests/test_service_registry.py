"""A service registered in devserver.routing.SERVICES is registered in every place that cannot
read that list (the workspace, the Makefile, skaffold.yaml, infra/k8s, the CI workflows), its
API is reachable through ROUTES and documented, and none of those places names a service that
SERVICES does not know. CONTRIBUTING.md lists the same places."""

import re
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from common.catalog import ENTRY_POINT_GROUP
from devserver.docs import openapi_documents
from devserver.routing import ROUTES, SERVICES, Route, ServiceProcess, route_for

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGE_PREFIX = "gittix/"


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", requirement)
    return match.group(0) if match else requirement


def _members(root: Path) -> list[str]:
    members: list[str] = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["uv"][
        "workspace"
    ]["members"]
    return members


def workspace_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    """Each service is a workspace member, a workspace source and in the root dev group (so
    `make install` installs it); a member with an app is a service."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    members = _members(root)
    sources = pyproject["tool"]["uv"].get("sources", {})
    dev = {_requirement_name(r) for r in pyproject.get("dependency-groups", {}).get("dev", [])}
    names = {service.name for service in services}
    problems = []
    for name in sorted(names):
        if name not in members:
            problems.append(f"{name}: not a member in the root pyproject.toml [tool.uv.workspace]")
        if name not in sources:
            problems.append(f"{name}: not in the root pyproject.toml [tool.uv.sources]")
        if name not in dev:
            problems.append(f"{name}: not in the root dev group, so `make install` leaves it out")
    for member in members:
        app = root / member / "src" / member / "app.py"
        if member not in names and app.exists():
            problems.append(
                f"{member}: a workspace member with an app ({app.relative_to(root)}), "
                "missing from devserver.routing.SERVICES"
            )
    return problems


def makefile_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    """The Makefile's SERVICES (whose suites `make test` runs one by one) has every service and
    every member with tests, and only workspace members."""
    match = re.search(r"^SERVICES\s*:?=(.*)$", (root / "Makefile").read_text(), re.M)
    listed = match.group(1).split() if match else []
    members = _members(root)
    problems = [
        f"{s.name}: not in the Makefile's SERVICES, so `make test` skips its suite"
        for s in services
        if s.name not in listed
    ]
    names = {s.name for s in services}
    for member in members:
        if member not in names and member not in listed and (root / member / "tests").is_dir():
            problems.append(f"{member}: has tests but is not in the Makefile's SERVICES")
    for word in listed:
        if word not in members:
            problems.append(f"the Makefile's SERVICES names {word}, which is no workspace member")
    return problems


def skaffold_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    """skaffold.yaml builds exactly one image per service, in `build` and in every profile that
    builds (tests/infra checks how each is built)."""
    config: dict[str, Any] = yaml.safe_load((root / "skaffold.yaml").read_text())
    builds = {"build": config.get("build", {}).get("artifacts", [])}
    for profile in config.get("profiles", []):
        if "build" in profile:
            builds[f"profile {profile['name']}"] = profile["build"].get("artifacts", [])
    wanted = {IMAGE_PREFIX + s.name for s in services}
    problems = []
    for where, artifacts in builds.items():
        images = [artifact["image"] for artifact in artifacts]
        for image in sorted(wanted - set(images)):
            problems.append(f"{image.removeprefix(IMAGE_PREFIX)}: skaffold.yaml {where} lacks it")
        for image in sorted(set(images) - wanted):
            problems.append(
                f"skaffold.yaml {where} builds {image}, which is no service in "
                "devserver.routing.SERVICES"
            )
    return problems


def manifest_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    """infra/k8s deploys each service from its own directory, with the shared component, and the
    data-service component exactly when it owns data; and no other service."""
    base = root / "infra" / "k8s"
    resources = yaml.safe_load((base / "kustomization.yaml").read_text()).get("resources", [])
    problems = []
    for service in services:
        if service.name not in resources:
            problems.append(f"{service.name}: infra/k8s/kustomization.yaml does not list it")
        kustomization = base / service.name / "kustomization.yaml"
        if not kustomization.exists():
            problems.append(f"{service.name}: no infra/k8s/{service.name}/kustomization.yaml")
            continue
        components = yaml.safe_load(kustomization.read_text()).get("components", [])
        used = {Path(component).name for component in components}
        if "service" not in used:
            problems.append(f"{service.name}: does not use infra/components/service")
        if ("data-service" in used) != service.owns_data:
            problems.append(
                f"{service.name}: {'lacks' if service.owns_data else 'uses'} "
                "infra/components/data-service, but it "
                f"{'owns' if service.owns_data else 'owns no'} data"
            )
    names = {s.name for s in services}
    for resource in resources:
        if (base / resource).is_dir() and resource not in names:
            problems.append(
                f"infra/k8s/{resource} deploys a service devserver.routing.SERVICES does not know"
            )
    return problems


def workflow_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    """When there is CI: every service has its workflow, and every job run per service (a
    `service` matrix) runs for exactly the services."""
    workflows = root / ".github" / "workflows"
    if not workflows.is_dir():
        return []
    names = {s.name for s in services}
    problems = [
        f"{name}: no .github/workflows/{name}.yml runs its suite"
        for name in sorted(names)
        if not (workflows / f"{name}.yml").exists()
    ]
    for path in sorted(workflows.glob("*.y*ml")):
        jobs = (yaml.safe_load(path.read_text()) or {}).get("jobs", {})
        for job_name, job in jobs.items():
            listed = job.get("strategy", {}).get("matrix", {}).get("service")
            if not isinstance(listed, list):
                continue
            where = f".github/workflows/{path.name} job {job_name}"
            for name in sorted(names - set(listed)):
                problems.append(f"{name}: {where} does not run for it")
            for name in sorted(set(listed) - names):
                problems.append(f"{where} runs for {name}, which is no service")
    return problems


def routing_problems(
    services: Sequence[ServiceProcess],
    routes: Sequence[Route],
    api_paths: dict[str, list[str]],
) -> list[str]:
    """ROUTES sends only to services, and every path of a service's API reaches that service."""
    names = {s.name for s in services}
    problems = [
        f"ROUTES sends {route.prefix} to {route.service}, which is not in SERVICES"
        for route in routes
        if route.service not in names
    ]
    for name, paths in sorted(api_paths.items()):
        for path in paths:
            reached = route_for(path, routes).service
            if reached != name:
                problems.append(f"{name}: {path} is routed to {reached}, so {name} never sees it")
    return problems


def docs_problems(root: Path, services: Sequence[ServiceProcess], apis: list[str]) -> list[str]:
    """Every API is in docs/openapi/ and linked from the README; every service that owns data
    has a `gittix.services` contract, so docs/events.md shows what it sends and receives."""
    readme = (root / "README.md").read_text()
    problems = []
    for name in apis:
        document = f"docs/openapi/{name}.json"
        if not (root / document).exists():
            problems.append(f"{name}: {document} is missing (make docs)")
        if f"({document})" not in readme:
            problems.append(f"{name}: README.md does not link {document}")
    contracts = {point.name for point in entry_points(group=ENTRY_POINT_GROUP)}
    names = {s.name for s in services}
    for service in services:
        if service.owns_data and service.name not in contracts:
            problems.append(
                f"{service.name}: no {ENTRY_POINT_GROUP} entry point, so docs/events.md "
                "leaves its events out"
            )
    for contract in sorted(contracts - names):
        problems.append(f"the {ENTRY_POINT_GROUP} entry point {contract} is no service")
    return problems


def file_problems(root: Path, services: Sequence[ServiceProcess]) -> list[str]:
    return (
        workspace_problems(root, services)
        + makefile_problems(root, services)
        + skaffold_problems(root, services)
        + manifest_problems(root, services)
        + workflow_problems(root, services)
    )


@pytest.fixture(scope="module")
def api_paths() -> dict[str, list[str]]:
    return {name: list(doc["paths"]) for name, doc in openapi_documents().items()}


def test_every_service_is_registered_everywhere(api_paths: dict[str, list[str]]) -> None:
    problems = (
        file_problems(REPO_ROOT, SERVICES)
        + routing_problems(SERVICES, ROUTES, api_paths)
        + docs_problems(REPO_ROOT, SERVICES, sorted(api_paths))
    )
    assert problems == []


def test_the_apis_are_the_services_with_public_routes(api_paths: dict[str, list[str]]) -> None:
    # expiration only reports health; the client serves pages, not a JSON API.
    assert sorted(api_paths) == ["auth", "orders", "payments", "tickets"]


def test_a_service_registered_only_in_services_is_reported() -> None:
    refunds = ServiceProcess("refunds", "refunds.app:create_app", 4006)
    problems = file_problems(REPO_ROOT, (*SERVICES, refunds))
    for expected in (
        "refunds: not a member in the root pyproject.toml [tool.uv.workspace]",
        "refunds: not in the root dev group, so `make install` leaves it out",
        "refunds: not in the Makefile's SERVICES, so `make test` skips its suite",
        "refunds: skaffold.yaml build lacks it",
        "refunds: skaffold.yaml profile dev lacks it",
        "refunds: infra/k8s/kustomization.yaml does not list it",
        "refunds: no infra/k8s/refunds/kustomization.yaml",
    ):
        assert expected in problems
    if (REPO_ROOT / ".github" / "workflows").is_dir():
        assert "refunds: no .github/workflows/refunds.yml runs its suite" in problems
    assert "refunds: no gittix.services entry point, so docs/events.md leaves its events out" in (
        docs_problems(REPO_ROOT, (*SERVICES, refunds), [])
    )


def test_a_service_left_out_of_services_is_reported(api_paths: dict[str, list[str]]) -> None:
    without_payments = [s for s in SERVICES if s.name != "payments"]
    problems = file_problems(REPO_ROOT, without_payments)
    for expected in (
        "payments: a workspace member with an app (payments/src/payments/app.py), "
        "missing from devserver.routing.SERVICES",
        "skaffold.yaml build builds gittix/payments, which is no service in "
        "devserver.routing.SERVICES",
        "infra/k8s/payments deploys a service devserver.routing.SERVICES does not know",
    ):
        assert expected in problems
    assert "ROUTES sends /api/payments to payments, which is not in SERVICES" in (
        routing_problems(without_payments, ROUTES, api_paths)
    )
    assert "the gittix.services entry point payments is no service" in (
        docs_problems(REPO_ROOT, without_payments, [])
    )


def test_a_service_dropped_from_one_file_is_reported(tmp_path: Path) -> None:
    for name in ("pyproject.toml", "Makefile", "skaffold.yaml", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "infra", tmp_path / "infra")
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        re.sub(r"^(SERVICES\s*:?=.*) orders", r"\1", makefile.read_text(), count=1, flags=re.M)
    )
    kustomization = tmp_path / "infra" / "k8s" / "tickets" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("  - ../../components/data-service\n", "")
    )
    tickets_owning_nothing = [
        replace(s, owns_data=False) if s.name == "tickets" else s for s in SERVICES
    ]
    assert makefile_problems(tmp_path, SERVICES) == [
        "orders: not in the Makefile's SERVICES, so `make test` skips its suite"
    ]
    assert manifest_problems(tmp_path, SERVICES) == [
        "tickets: lacks infra/components/data-service, but it owns data"
    ]
    assert manifest_problems(tmp_path, tickets_owning_nothing) == []
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("(docs/openapi/orders.json)", ""))
    assert docs_problems(tmp_path, SERVICES, ["orders"]) == [
        "orders: docs/openapi/orders.json is missing (make docs)",
        "orders: README.md does not link docs/openapi/orders.json",
    ]


def test_an_api_path_the_routes_do_not_reach_is_reported(api_paths: dict[str, list[str]]) -> None:
    routes = [route for route in ROUTES if route.prefix != "/api/orders"]
    problems = routing_problems(SERVICES, routes, api_paths)
    assert "orders: /api/orders is routed to client, so orders never sees it" in problems
    assert "orders: /api/orders/{order_id} is routed to client, so orders never sees it" in problems
