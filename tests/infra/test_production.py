"""The production overlay renders, passes strict schemas (KEDA's from its vendored CRD), and holds
what production needs: replica sets, autoscalers on CPU and consumer lag, zones, requests, the
published images, and no connection the base does not allow besides replication and KEDA's.
Each check is also run on a broken copy, to show it fails."""

import copy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from infra_checks import REPO_ROOT, Manifest, find, kustomize, security_problems
from production_checks import (
    PRODUCTION,
    autoscaling_problems,
    image_problems,
    listeners_by_service,
    placement_problems,
    production_network_problems,
    production_schema_problems,
    rendered_names,
    replica_set_problems,
)


@pytest.fixture(scope="session")
def production() -> list[Manifest]:
    return kustomize(PRODUCTION)


def named(obj: Manifest, kind: str, name: str) -> bool:
    return bool(obj["kind"] == kind and obj["metadata"]["name"] == name)


def broken(objects: list[Manifest], kind: str, name: str) -> tuple[list[Manifest], Manifest]:
    copied = copy.deepcopy(objects)
    target = find(copied, kind, name)
    assert target is not None, f"{kind}/{name} is not rendered"
    return copied, target


def test_production_is_the_base_plus_what_production_adds(
    production: list[Manifest], base_objects: list[Manifest]
) -> None:
    assert rendered_names(base_objects) <= rendered_names(production)
    added = rendered_names(production) - rendered_names(base_objects)
    assert ("Job", "orders-mongo-init") in added
    assert ("ScaledObject", "orders") in added
    assert ("HorizontalPodAutoscaler", "auth") in added
    assert all(
        o["metadata"].get("namespace") == "gittix" for o in production if o["kind"] != "Namespace"
    )


def test_production_passes_strict_schemas_with_kedas_crd(production: list[Manifest]) -> None:
    assert production_schema_problems(production) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s["spec"].pop("scaleTargetRef"), "'scaleTargetRef' is a required property"),
        (lambda s: s["spec"].update(maxReplicas=10), "'maxReplicas' was unexpected"),
        (lambda s: s["spec"]["triggers"][0].pop("metadata"), "'metadata' is a required property"),
        (lambda s: s["spec"].update(pollingInterval="5s"), "'5s' is not of type 'integer'"),
        (lambda s: s.update(apiVersion="keda.sh/v1"), "no vendored CRD schema for keda.sh/v1"),
    ],
)
def test_a_scaled_object_kedas_schema_refuses_is_reported(
    production: list[Manifest], change: Callable[[Manifest], Any], expected: str
) -> None:
    objects, scaled = broken(production, "ScaledObject", "orders")
    change(scaled)
    assert any(expected in problem for problem in production_schema_problems(objects))


def test_every_data_service_has_a_three_member_replica_set(production: list[Manifest]) -> None:
    assert replica_set_problems(production) == []


def mongod(statefulset: Manifest) -> Manifest:
    container: Manifest = statefulset["spec"]["template"]["spec"]["containers"][0]
    return container


def without_flag(args: list[str], flag: str) -> list[str]:
    at = args.index(flag)
    return args[:at] + args[at + 2 :]


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        (
            "StatefulSet",
            "orders-mongo",
            lambda s: s["spec"].update(replicas=1),
            "orders-mongo: 1 member(s), a replica set needs 3",
        ),
        (
            "StatefulSet",
            "tickets-mongo",
            lambda s: s["spec"]["template"]["spec"]["containers"][0].update(
                args=without_flag(
                    s["spec"]["template"]["spec"]["containers"][0]["args"], "--replSet"
                )
            ),
            "tickets-mongo: mongod is not started with --replSet rs0",
        ),
        (
            "StatefulSet",
            "auth-mongo",
            lambda s: s["spec"]["template"]["spec"]["volumes"][-1]["secret"].update(
                secretName="orders-mongo-keyfile"
            ),
            "auth-mongo: the keyfile does not come from the Secret auth-mongo-keyfile",
        ),
        (
            "StatefulSet",
            "payments-mongo",
            lambda s: s["spec"]["template"]["spec"].pop("topologySpreadConstraints"),
            "payments-mongo: members are not spread across zones",
        ),
        (
            "Job",
            "expiration-mongo-init",
            lambda j: j["spec"]["template"]["spec"]["containers"][0]["env"][1].update(
                value="expiration-mongo-0.expiration-mongo:27017"
            ),
            "expiration-mongo-init: members ['expiration-mongo-0.expiration-mongo:27017'] are "
            "not the StatefulSet's",
        ),
        (
            "PodDisruptionBudget",
            "orders-mongo",
            lambda p: p["spec"].update(maxUnavailable=2),
            "orders-mongo: no disruption budget keeping a majority",
        ),
    ],
)
def test_a_replica_set_that_is_not_one_is_reported(
    production: list[Manifest],
    kind: str,
    name: str,
    change: Callable[[Manifest], Any],
    expected: str,
) -> None:
    objects, target = broken(production, kind, name)
    change(target)
    assert any(expected in problem for problem in replica_set_problems(objects))


def test_a_replica_set_without_its_init_job_is_reported(production: list[Manifest]) -> None:
    objects = [
        o for o in production if (o["kind"], o["metadata"]["name"]) != ("Job", "auth-mongo-init")
    ]
    assert "auth-mongo: no Job auth-mongo-init to run rs.initiate" in replica_set_problems(objects)


def test_every_service_is_autoscaled_and_each_listener_on_its_consumers_lag(
    production: list[Manifest],
) -> None:
    consumers = listeners_by_service()
    # What the overlay must cover, from the contracts: auth only publishes, the others listen.
    assert consumers["auth"] == set()
    assert "orders-ticket-created-v1" in consumers["orders"]
    assert autoscaling_problems(production) == []


def rename_consumer(scaled: Manifest, old: str, new: str) -> None:
    for trigger in scaled["spec"]["triggers"]:
        if trigger["metadata"].get("consumer") == old:
            trigger["metadata"]["consumer"] = new


@pytest.mark.parametrize(
    ("kind", "name", "change", "expected"),
    [
        (
            "HorizontalPodAutoscaler",
            "auth",
            lambda h: h["spec"]["scaleTargetRef"].update(name="authentication"),
            "HorizontalPodAutoscaler/auth: scales Deployment/authentication, which is not rendered",
        ),
        (
            "ScaledObject",
            "orders",
            lambda s: rename_consumer(s, "orders-ticket-created-v1", "orders-ticket-deleted-v1"),
            "ScaledObject/orders: orders-ticket-deleted-v1 is not a consumer of orders",
        ),
        (
            "ScaledObject",
            "orders",
            lambda s: rename_consumer(s, "orders-ticket-created-v1", "orders-ticket-deleted-v1"),
            "ScaledObject/orders: the lag of orders-ticket-created-v1 is not watched",
        ),
        (
            "ScaledObject",
            "payments",
            lambda s: s["spec"]["triggers"][1]["metadata"].update(stream="ORDERS"),
            "stream 'ORDERS' is not TICKETING",
        ),
        (
            "ScaledObject",
            "tickets",
            lambda s: s["spec"]["triggers"][1]["metadata"].update(
                natsServerMonitoringEndpoint="nats.gittix.svc.cluster.local:8222"
            ),
            "nats.gittix.svc.cluster.local:8222 is not NATS' monitoring port",
        ),
        (
            "ScaledObject",
            "expiration",
            lambda s: s["spec"].update(minReplicaCount=0),
            "ScaledObject/expiration: may scale down to 0, fewer than 2",
        ),
        (
            "ScaledObject",
            "expiration",
            lambda s: s["spec"].update(triggers=s["spec"]["triggers"][1:]),
            "ScaledObject/expiration: does not scale on CPU",
        ),
        (
            "ScaledObject",
            "tickets",
            lambda s: s["spec"]["scaleTargetRef"].update(name="orders"),
            "Deployment/orders: 2 autoscalers (ScaledObject/orders, ScaledObject/tickets)",
        ),
        (
            "Deployment",
            "client",
            lambda d: d["spec"].update(replicas=2),
            "Deployment/client: sets replicas, which its autoscaler owns",
        ),
    ],
)
def test_an_autoscaler_that_strays_is_reported(
    production: list[Manifest],
    kind: str,
    name: str,
    change: Callable[[Manifest], Any],
    expected: str,
) -> None:
    objects, target = broken(production, kind, name)
    change(target)
    assert any(expected in problem for problem in autoscaling_problems(objects))


def test_a_listener_left_without_a_scaled_object_is_reported(production: list[Manifest]) -> None:
    objects = [
        o for o in production if (o["kind"], o["metadata"]["name"]) != ("ScaledObject", "payments")
    ]
    problems = autoscaling_problems(objects)
    assert "payments: listens but is not scaled on its consumers' lag" in problems
    assert any(p.startswith("Deployment/payments: 0 autoscalers") for p in problems)


def test_a_new_consumer_in_a_contract_must_be_watched(production: list[Manifest]) -> None:
    consumers = listeners_by_service()
    consumers["tickets"] = {*consumers["tickets"], "tickets-ticket-audited-v1"}
    assert "ScaledObject/tickets: the lag of tickets-ticket-audited-v1 is not watched" in (
        autoscaling_problems(production, consumers)
    )


def test_pods_spread_across_zones_and_request_what_they_use(production: list[Manifest]) -> None:
    assert placement_problems(production) == []
    assert security_problems(production) == []


def test_a_pod_that_is_not_spread_or_requests_nothing_is_reported(
    production: list[Manifest],
) -> None:
    objects, orders = broken(production, "Deployment", "orders")
    orders["spec"]["template"]["spec"]["topologySpreadConstraints"].pop()
    job = find(objects, "Job", "orders-mongo-init")
    assert job is not None
    job["spec"]["template"]["spec"]["containers"][0]["resources"].pop("requests")
    problems = placement_problems(objects)
    assert "Deployment/orders: pods are not spread across zones" in problems
    assert "Job/orders-mongo-init: initiate requests no cpu" in problems


def test_every_service_runs_its_published_image(production: list[Manifest]) -> None:
    assert image_problems(production) == []


def test_a_service_left_on_the_development_image_is_reported(production: list[Manifest]) -> None:
    objects, tickets = broken(production, "Deployment", "tickets")
    tickets["spec"]["template"]["spec"]["containers"][0]["image"] = "gittix/tickets"
    assert "Deployment/tickets: runs gittix/tickets, which is never published" in image_problems(
        objects
    )


def test_production_opens_only_replication_and_kedas_monitoring(
    production: list[Manifest],
) -> None:
    assert production_network_problems(production) == []


def test_a_replication_policy_missing_or_too_wide_is_reported(production: list[Manifest]) -> None:
    objects = [o for o in production if not named(o, "NetworkPolicy", "orders-mongo-replication")]
    problems = production_network_problems(objects)
    assert "orders-mongo: its members cannot replicate to each other" in problems
    assert "orders-mongo-init -> orders-mongo:27017 is denied, expected allowed" in problems
    # Both sides opened wider: any init Job to any MongoDB.
    wide, init = broken(production, "NetworkPolicy", "auth-mongo-init")
    init["spec"]["egress"][0]["to"][0]["podSelector"]["matchLabels"] = {
        "app.kubernetes.io/component": "database"
    }
    replication = find(wide, "NetworkPolicy", "orders-mongo-replication")
    assert replication is not None
    replication["spec"]["ingress"][0]["from"][1]["podSelector"]["matchLabels"] = {
        "app.kubernetes.io/component": "database-init"
    }
    assert "auth-mongo-init -> orders-mongo:27017 is allowed, expected denied" in (
        production_network_problems(wide)
    )


def test_kustomize_fails_on_a_broken_overlay(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    (infra / "overlays" / "production" / "autoscaling.yaml").unlink()
    with pytest.raises(RuntimeError, match=r"autoscaling\.yaml"):
        kustomize(infra / "overlays" / "production")
