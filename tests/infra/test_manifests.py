"""The kustomize base and its Gateway variant render, pass strict schemas, and run safely."""

import copy
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from devserver.routing import SERVICES
from infra_checks import (
    GATEWAY_NGINX,
    KUBERNETES_VERSION,
    REPO_ROOT,
    Manifest,
    bus_user_problems,
    env_from_secret,
    find,
    kustomize,
    main_container,
    mongo_problems,
    nats_config_files,
    nats_problems,
    network_problems,
    replica_problems,
    schema_problems,
    security_problems,
    tool,
)


def mutated(objects: list[Manifest], kind: str, name: str) -> tuple[list[Manifest], Manifest]:
    """A deep copy of the rendered objects and, in it, the object to break."""
    broken = copy.deepcopy(objects)
    target = find(broken, kind, name)
    assert target is not None, f"{kind}/{name} is not rendered"
    return broken, target


def test_base_renders_every_service_and_its_storage(base_objects: list[Manifest]) -> None:
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in base_objects}
    for service in SERVICES:
        assert ("Deployment", service.name) in kinds
        assert ("Service", service.name) in kinds
        assert (("StatefulSet", f"{service.name}-mongo") in kinds) == service.owns_data
    assert ("StatefulSet", "nats") in kinds
    assert ("Ingress", "ticketing") in kinds
    assert all(
        obj["metadata"].get("namespace") == "gittix"
        for obj in base_objects
        if obj["kind"] != "Namespace"
    )


def test_kustomize_fails_on_a_broken_base(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    (infra / "k8s" / "orders" / "deployment.yaml").unlink()
    with pytest.raises(RuntimeError, match=r"orders/deployment\.yaml"):
        kustomize(infra / "k8s")


def test_a_service_without_the_shared_components_is_rejected(
    tmp_path: Path, cluster_secrets: list[Manifest]
) -> None:
    # Each service's directory holds only what is its own: without the components the probes,
    # security, Service and MongoDB are gone, and the checks say so.
    infra = tmp_path / "infra"
    shutil.copytree(REPO_ROOT / "infra", infra)
    for service, component in (("orders", "service"), ("tickets", "data-service")):
        kustomization = infra / "k8s" / service / "kustomization.yaml"
        line = f"  - ../../components/{component}\n"
        assert line in kustomization.read_text(), f"{service} no longer uses {component}"
        kustomization.write_text(kustomization.read_text().replace(line, ""))
    broken = kustomize(infra / "k8s")
    assert find(broken, "Service", "orders") is None
    assert "Deployment/orders: the root filesystem is writable" in security_problems(broken)
    assert "Deployment/orders: no emptyDir at /tmp" in security_problems(broken)
    assert "tickets: no MONGO_URL" in mongo_problems(broken, cluster_secrets)
    # Its pods lost their name label with the component: no policy lets them reach MongoDB.
    assert "orders -> orders-mongo:27017 is denied, expected allowed" in network_problems(broken)


def test_every_rendered_object_passes_strict_schemas(
    base_objects: list[Manifest], gateway_objects: list[Manifest]
) -> None:
    assert schema_problems(base_objects) == []
    assert schema_problems(gateway_objects) == []


def test_kubernetes_validate_cli_accepts_the_base(
    base_objects: list[Manifest], tmp_path: Path
) -> None:
    rendered = tmp_path / "base.yaml"
    rendered.write_text(yaml.safe_dump_all(base_objects))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A WARN means a kind it has no schema for: the base uses built-in kinds only.
    assert "WARN" not in result.stdout and "ERROR" not in result.stdout


def test_kubernetes_validate_cli_rejects_a_typo(
    base_objects: list[Manifest], tmp_path: Path
) -> None:
    broken, deployment = mutated(base_objects, "Deployment", "orders")
    main_container(deployment)["imagePullPolcy"] = "Always"
    rendered = tmp_path / "broken.yaml"
    rendered.write_text(yaml.safe_dump_all(broken))
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "imagePullPolcy" in result.stdout


def test_a_typoed_field_is_rejected(base_objects: list[Manifest]) -> None:
    _, deployment = mutated(base_objects, "Deployment", "tickets")
    main_container(deployment)["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    assert any("paht" in problem for problem in schema_problems([deployment]))


def test_a_wrong_type_is_rejected(base_objects: list[Manifest]) -> None:
    _, deployment = mutated(base_objects, "Deployment", "auth")
    deployment["spec"]["replicas"] = "2"
    assert any("replicas" in problem for problem in schema_problems([deployment]))


@pytest.mark.parametrize(
    ("kind", "name", "api_version"),
    [
        ("PodDisruptionBudget", "auth", "policy/v1beta1"),
        ("Ingress", "ticketing", "extensions/v1beta1"),
        ("StatefulSet", "nats", "apps/v1beta2"),
    ],
)
def test_a_removed_api_is_rejected(
    base_objects: list[Manifest], kind: str, name: str, api_version: str
) -> None:
    _, target = mutated(base_objects, kind, name)
    target["apiVersion"] = api_version
    assert f"{kind}/{name}: no {api_version} {kind} in Kubernetes {KUBERNETES_VERSION}" in (
        schema_problems([target])
    )


def test_an_unknown_builtin_kind_is_rejected(base_objects: list[Manifest]) -> None:
    _, target = mutated(base_objects, "Deployment", "payments")
    target["kind"] = "Deploymnet"
    assert any("Deploymnet" in problem for problem in schema_problems([target]))


def test_a_typo_in_the_gateway_is_rejected(gateway_objects: list[Manifest]) -> None:
    _, gateway = mutated(gateway_objects, "Gateway", "ticketing")
    gateway["spec"]["gatewayClass"] = gateway["spec"].pop("gatewayClassName")
    problems = schema_problems([gateway])
    assert any("gatewayClass" in problem for problem in problems)


def test_a_bad_httproute_is_rejected(gateway_objects: list[Manifest]) -> None:
    _, route = mutated(gateway_objects, "HTTPRoute", "ticketing")
    del route["spec"]["rules"][0]["backendRefs"][0]["port"]
    route["spec"]["rules"][1]["matches"][0]["path"]["type"] = "Prefix"
    problems = schema_problems([route])
    assert any("'port' is a required property" in p for p in problems)
    assert any("'Prefix' is not one of" in p for p in problems)


def test_workloads_are_locked_down(base_objects: list[Manifest]) -> None:
    assert security_problems(base_objects) == []
    assert replica_problems(base_objects) == []


@pytest.mark.parametrize(
    ("kind", "name", "breakage", "expected"),
    [
        (
            "Deployment",
            "orders",
            lambda w: main_container(w)["securityContext"].update(readOnlyRootFilesystem=False),
            "Deployment/orders: the root filesystem is writable",
        ),
        (
            "StatefulSet",
            "auth-mongo",
            lambda w: w["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot"),
            "StatefulSet/auth-mongo: runAsNonRoot is not set",
        ),
        (
            "Deployment",
            "client",
            lambda w: main_container(w)["resources"].pop("limits"),
            "Deployment/client: no memory limits",
        ),
        (
            "Deployment",
            "payments",
            lambda w: main_container(w).pop("lifecycle"),
            "Deployment/payments: no preStop hook to drain connections",
        ),
        (
            "Deployment",
            "tickets",
            lambda w: main_container(w).update(volumeMounts=[]),
            "Deployment/tickets: no emptyDir at /tmp",
        ),
    ],
)
def test_an_unsafe_workload_is_rejected(
    base_objects: list[Manifest], kind: str, name: str, breakage: object, expected: str
) -> None:
    broken, workload = mutated(base_objects, kind, name)
    breakage(workload)  # type: ignore[operator]
    assert expected in security_problems(broken)


def test_a_replicated_service_without_disruption_budget_is_rejected(
    base_objects: list[Manifest],
) -> None:
    broken = [
        obj
        for obj in copy.deepcopy(base_objects)
        if not (obj["kind"] == "PodDisruptionBudget" and obj["metadata"]["name"] == "expiration")
    ]
    assert "Deployment/expiration: several replicas but no PodDisruptionBudget" in (
        security_problems(broken)
    )
    broken, deployment = mutated(base_objects, "Deployment", "expiration")
    deployment["spec"]["replicas"] = 1
    assert replica_problems(broken) == ["expiration: 1 replicas"]


def test_each_data_service_has_its_own_mongodb(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    assert mongo_problems(base_objects, cluster_secrets) == []


def env_item(workload: Manifest, name: str) -> Manifest:
    item: Manifest = next(e for e in main_container(workload)["env"] if e["name"] == name)
    return item


def test_a_shared_or_unbacked_mongodb_is_rejected(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    broken, tickets = mutated(base_objects, "Deployment", "tickets")
    env_item(tickets, "MONGO_URL")["valueFrom"]["secretKeyRef"]["name"] = "auth-credentials"
    problems = mongo_problems(broken, cluster_secrets)
    assert "tickets: shares MongoDB auth-mongo with auth" in problems
    assert "tickets: MONGO_URL points at auth-mongo, not its own tickets-mongo" in problems

    broken, mongo = mutated(base_objects, "StatefulSet", "orders-mongo")
    mongo["spec"].pop("volumeClaimTemplates")
    assert "orders: orders-mongo keeps /data/db on no persistent volume" in (
        mongo_problems(broken, cluster_secrets)
    )


def test_every_mongodb_requires_authentication_with_a_user_per_service(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    for service in ("auth", "tickets", "orders", "expiration", "payments"):
        mongo = find(base_objects, "StatefulSet", f"{service}-mongo")
        assert mongo is not None
        env = env_from_secret(mongo, cluster_secrets)
        assert env["MONGO_INITDB_ROOT_USERNAME"] and env["MONGO_INITDB_ROOT_PASSWORD"]
        assert env["GITTIX_MONGO_USERNAME"] == env["GITTIX_MONGO_DATABASE"] == service
    # Passwords differ between services: one leaked URL opens one database.
    passwords = {
        env_from_secret(mongo, cluster_secrets)["GITTIX_MONGO_PASSWORD"]
        for mongo in base_objects
        if mongo["kind"] == "StatefulSet" and mongo["metadata"]["name"].endswith("-mongo")
    }
    assert len(passwords) == 5


def test_a_mongodb_without_authentication_is_rejected(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    broken, mongo = mutated(base_objects, "StatefulSet", "tickets-mongo")
    main_container(mongo).pop("envFrom")
    assert "tickets: tickets-mongo runs without authentication (no root user)" in (
        mongo_problems(broken, cluster_secrets)
    )

    broken, mongo = mutated(base_objects, "StatefulSet", "orders-mongo")
    mongo["spec"]["template"]["spec"]["volumes"] = [
        v for v in mongo["spec"]["template"]["spec"]["volumes"] if v["name"] != "init"
    ]
    assert "orders: orders-mongo has no init script creating the service's own user" in (
        mongo_problems(broken, cluster_secrets)
    )

    broken, payments = mutated(base_objects, "Deployment", "payments")
    item = env_item(payments, "MONGO_URL")
    item.pop("valueFrom")
    item["value"] = "mongodb://payments-mongo:27017/payments"
    assert "payments: MONGO_URL carries no user and password" in (
        mongo_problems(broken, cluster_secrets)
    )


def test_nats_is_a_durable_three_node_jetstream_cluster(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    assert nats_problems(base_objects, cluster_secrets) == []


def test_the_clusters_nats_users_are_the_contracts(base_objects: list[Manifest]) -> None:
    assert bus_user_problems(base_objects) == []


def test_a_nats_user_with_wider_rights_is_rejected(base_objects: list[Manifest]) -> None:
    name = next(o for o in base_objects if o["metadata"]["name"].startswith("nats-config"))
    broken, config = mutated(base_objects, "ConfigMap", name["metadata"]["name"])
    users = config["data"]["nats-users.conf"]
    tickets = users.index('user: "tickets"')
    widened = users[:tickets] + users[tickets:].replace(
        'publish: {allow: ["', 'publish: {allow: [">", "', 1
    ).replace('subscribe: {allow: ["', 'subscribe: {allow: ["ticketing.>", "', 1)
    config["data"]["nats-users.conf"] = widened
    problems = bus_user_problems(broken)
    assert "NATS user tickets may publish to >" in problems
    assert "NATS user tickets may subscribe to ticketing.>" in problems
    assert "nats-users.conf is not what the services' contracts give (make docs)" in problems


def test_a_nats_open_to_anyone_or_a_service_as_another_user_is_rejected(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    name = next(o for o in base_objects if o["metadata"]["name"].startswith("nats-config"))
    broken, config = mutated(base_objects, "ConfigMap", name["metadata"]["name"])
    config["data"]["nats.conf"] = config["data"]["nats.conf"].replace("include ./nats-users", "#")
    assert "NATS admits anyone: nats.conf includes no nats-users.conf with users" in (
        nats_problems(broken, cluster_secrets)
    )

    broken, tickets = mutated(base_objects, "Deployment", "tickets")
    env_item(tickets, "NATS_URL")["valueFrom"]["secretKeyRef"]["name"] = "payments-credentials"
    assert "Deployment/tickets: NATS_URL is not as its own user tickets" in (
        nats_problems(broken, cluster_secrets)
    )

    broken, nats = mutated(base_objects, "StatefulSet", "nats")
    main_container(nats).pop("envFrom")
    assert "NATS user tickets has no password in the nats-users Secret" in (
        nats_problems(broken, cluster_secrets)
    )


def test_network_policies_allow_exactly_what_each_part_needs(
    base_objects: list[Manifest], gateway_objects: list[Manifest]
) -> None:
    # Ingress-nginx (or the Gateway's NGINX) to the services; each service to its own MongoDB
    # and NATS; payments to Stripe; NATS nodes to each other; DNS. Nothing else, from anywhere.
    assert network_problems(base_objects) == []
    assert network_problems(gateway_objects, GATEWAY_NGINX) == []


def without(objects: list[Manifest], kind: str, name: str) -> list[Manifest]:
    return [
        o
        for o in copy.deepcopy(objects)
        if not (o["kind"] == kind and o["metadata"]["name"] == name)
    ]


def test_a_missing_or_loose_network_policy_is_rejected(base_objects: list[Manifest]) -> None:
    # A service without its policy: the default deny leaves it unreachable.
    broken = without(base_objects, "NetworkPolicy", "orders")
    assert "ingress-nginx -> orders:8000 is denied, expected allowed" in network_problems(broken)

    # No default deny, and a MongoDB whose own policy went missing too: open to any pod of
    # any namespace.
    broken = without(base_objects, "NetworkPolicy", "default-deny")
    problems = network_problems(without(broken, "NetworkPolicy", "tickets-mongo"))
    assert "outsider -> tickets-mongo:27017 is allowed, expected denied" in problems
    # With the default deny, the same missing policy leaves that MongoDB closed, as it should.
    assert network_problems(without(base_objects, "NetworkPolicy", "tickets-mongo")) == [
        "tickets -> tickets-mongo:27017 is denied, expected allowed"
    ]

    # A MongoDB, or NATS, open to every pod of every namespace (a namespaceSelector {} slip).
    broken, policy = mutated(base_objects, "NetworkPolicy", "auth-mongo")
    policy["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    assert "outsider -> auth-mongo:27017 is allowed, expected denied" in network_problems(broken)
    broken, policy = mutated(base_objects, "NetworkPolicy", "nats")
    policy["spec"]["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    assert "outsider -> nats:4222 is allowed, expected denied" in network_problems(broken)

    # payments to every address (the node's metadata server too).
    broken, policy = mutated(base_objects, "NetworkPolicy", "payments-stripe")
    policy["spec"]["egress"][0]["to"][0]["ipBlock"].pop("except")
    assert "payments -> metadata:443 is allowed, expected denied" in network_problems(broken)


def test_a_weakened_nats_is_rejected(
    base_objects: list[Manifest], cluster_secrets: list[Manifest]
) -> None:
    broken, nats = mutated(base_objects, "StatefulSet", "nats")
    nats["spec"]["replicas"] = 1
    assert "NATS has 1 nodes, not 3" in nats_problems(broken, cluster_secrets)

    config_name = next(
        v["configMap"]["name"]
        for v in nats["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    )
    broken, config = mutated(base_objects, "ConfigMap", config_name)
    config["data"]["nats.conf"] = config["data"]["nats.conf"].replace("sync_interval: always", "")
    assert "NATS JetStream does not fsync every write (sync_interval: always)" in (
        nats_problems(broken, cluster_secrets)
    )

    broken, nats = mutated(base_objects, "StatefulSet", "nats")
    main_container(nats)["readinessProbe"]["httpGet"]["path"] = "/healthz"
    assert "NATS readinessProbe does not ask /healthz?js-enabled-only=true" in (
        nats_problems(broken, cluster_secrets)
    )

    shared = next(o for o in base_objects if o["metadata"]["name"].startswith("ticketing-config"))
    broken, config = mutated(base_objects, "ConfigMap", shared["metadata"]["name"])
    config["data"]["NATS_STREAM_REPLICAS"] = "1"
    assert "Deployment/orders: NATS_STREAM_REPLICAS is not 3" in (
        nats_problems(broken, cluster_secrets)
    )


def nats_server_accepts(
    objects: list[Manifest], secrets: list[Manifest], tmp_path: Path, **replace: str
) -> subprocess.CompletedProcess[str]:
    """`nats-server -t`: the real server parses the configuration the pods get (both files, the
    passwords in its environment as the nats-users Secret gives them); `replace` edits a file's
    text first (old=new pairs as file name -> (old, new) via "old\0new")."""
    for name, content in nats_config_files(objects).items():
        for old_new in [replace[name]] if name in replace else []:
            old, new = old_new.split("\0")
            content = content.replace(old, new)
        (tmp_path / name).write_text(content)
    nats = find(objects, "StatefulSet", "nats")
    assert nats is not None
    return subprocess.run(
        [tool("nats-server"), "--config", str(tmp_path / "nats.conf"), "-t"],
        capture_output=True,
        text=True,
        check=False,
        env={"POD_NAME": "nats-0", **env_from_secret(nats, secrets)},
    )


def test_nats_server_accepts_the_rendered_config(
    base_objects: list[Manifest], cluster_secrets: list[Manifest], tmp_path: Path
) -> None:
    result = nats_server_accepts(base_objects, cluster_secrets, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nats_server_rejects_a_typo_in_the_config(
    base_objects: list[Manifest], cluster_secrets: list[Manifest], tmp_path: Path
) -> None:
    result = nats_server_accepts(
        base_objects,
        cluster_secrets,
        tmp_path,
        **{"nats.conf": "sync_interval:\0sync_intervl:"},
    )
    assert result.returncode != 0
    assert "sync_intervl" in result.stdout + result.stderr

    # A password the Secret does not give: the server refuses the users file.
    result = nats_server_accepts(base_objects, [], tmp_path)
    assert result.returncode != 0
