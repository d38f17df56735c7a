"""skaffold.yaml: schema-valid, an artifact per image, kustomize, a dev profile that syncs."""

import copy
from typing import Any

import pytest
import yaml
from infra_checks import REPO_ROOT, SKAFFOLD_SCHEMA, Manifest, skaffold_problems


@pytest.fixture(scope="module")
def skaffold() -> Manifest:
    config: Manifest = yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text())
    return config


def test_the_vendored_skaffold_schema_is_there() -> None:
    assert SKAFFOLD_SCHEMA.exists(), f"{SKAFFOLD_SCHEMA} is missing: it is vendored in the repo"


def test_skaffold_yaml_passes_every_check(skaffold: Manifest, base_objects: list[Manifest]) -> None:
    assert skaffold_problems(skaffold, base_objects) == []


@pytest.mark.parametrize(
    ("path", "typo", "expected"),
    [
        (("build", "artifacts", 0, "docker"), "dockerfil", "build.artifacts.0.docker"),
        (("build", "artifacts", 0), "contxt", "build.artifacts.0"),
        (("profiles", 0, "build", "artifacts", 1, "sync", "manual", 0), "dst", "manual.0"),
        (("profiles", 0, "activation", 0), "comand", "profiles.0.activation.0"),
        ((), "manifest", "Additional properties are not allowed ('manifest'"),
    ],
)
def test_a_typoed_field_is_rejected_by_the_schema(
    skaffold: Manifest,
    base_objects: list[Manifest],
    path: tuple[str | int, ...],
    typo: str,
    expected: str,
) -> None:
    broken = copy.deepcopy(skaffold)
    target: Any = broken
    for step in path:
        target = target[step]
    target[typo] = "x"
    problems = skaffold_problems(broken, base_objects)
    assert any(expected in p and f"'{typo}'" in p for p in problems), problems


def test_a_wrong_api_version_is_rejected(skaffold: Manifest, base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(skaffold)
    broken["apiVersion"] = "skaffold/v2beta29"
    assert skaffold_problems(broken, base_objects) == [
        "skaffold.yaml is not apiVersion skaffold/v4beta14, kind Config"
    ]


def test_an_image_without_an_artifact_is_rejected(
    skaffold: Manifest, base_objects: list[Manifest]
) -> None:
    broken = copy.deepcopy(skaffold)
    broken["build"]["artifacts"] = [
        a for a in broken["build"]["artifacts"] if a["image"] != "gittix/expiration"
    ]
    problems = skaffold_problems(broken, base_objects)
    assert "skaffold.yaml build: no artifact for gittix/expiration" in problems
    assert (
        "skaffold.yaml: no artifact builds gittix/expiration, which a Deployment runs" in problems
    )


def test_a_dev_profile_that_does_not_sync_is_rejected(
    skaffold: Manifest, base_objects: list[Manifest]
) -> None:
    broken = copy.deepcopy(skaffold)
    dev = next(p for p in broken["profiles"] if p["name"] == "dev")
    payments = next(a for a in dev["build"]["artifacts"] if a["image"] == "gittix/payments")
    payments["sync"]["manual"] = [r for r in payments["sync"]["manual"] if "common" in r["src"]]
    payments["docker"]["target"] = "runtime"
    problems = skaffold_problems(broken, base_objects)
    assert "skaffold dev does not sync payments's .py files for gittix/payments" in problems
    assert "skaffold.yaml profile dev: gittix/payments builds stage runtime" in problems


def test_a_missing_kustomize_path_is_rejected(
    skaffold: Manifest, base_objects: list[Manifest]
) -> None:
    broken = copy.deepcopy(skaffold)
    broken["manifests"]["kustomize"]["paths"] = ["infra/kubernetes"]
    assert skaffold_problems(broken, base_objects) == [
        "skaffold.yaml: kustomize path infra/kubernetes has no kustomization.yaml"
    ]


def test_every_profile_renders(skaffold: Manifest) -> None:
    for profile in skaffold["profiles"]:
        for path in profile.get("manifests", {}).get("kustomize", {}).get("paths", []):
            assert (REPO_ROOT / path / "kustomization.yaml").exists(), (profile["name"], path)


def test_an_image_built_for_another_service_is_rejected(
    skaffold: Manifest, base_objects: list[Manifest]
) -> None:
    broken = copy.deepcopy(skaffold)
    orders = next(a for a in broken["build"]["artifacts"] if a["image"] == "gittix/orders")
    orders["docker"]["buildArgs"]["SERVICE"] = "tickets"
    dev = next(p for p in broken["profiles"] if p["name"] == "dev")
    client = next(a for a in dev["build"]["artifacts"] if a["image"] == "gittix/client")
    del client["docker"]["buildArgs"]
    client["docker"]["dockerfile"] = "client/Dockerfile"
    assert skaffold_problems(broken, base_objects) == [
        "skaffold.yaml build: gittix/orders is built with SERVICE=tickets, not orders",
        "skaffold.yaml profile dev: gittix/client is not built from the one Dockerfile",
        "skaffold.yaml profile dev: gittix/client is built with SERVICE=None, not client",
    ]
