"""The offline checks of the production overlay (infra/overlays/production): replica sets,
autoscalers, zones, requests, published images, and the KEDA ScaledObjects against KEDA's CRD
schema (vendored in schemas/keda/). Each returns the problems it finds; empty means it passes."""

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml
from common.catalog import load_contracts
from common.messaging import STREAM_NAME
from devserver.routing import SERVICES
from infra_checks import (
    DATA_SERVICES,
    GATEWAY_NGINX,
    INGRESS_NGINX,
    INTRUDER,
    KUBE_DNS,
    NAMESPACE,
    NODE_METADATA,
    OUTSIDER,
    REPO_ROOT,
    SCHEMAS,
    STRIPE,
    Manifest,
    Peer,
    expected_connections,
    find,
    label,
    may_connect,
    of_kind,
    pod_spec,
    schema_problems,
    workload_peers,
)

PRODUCTION = REPO_ROOT / "infra" / "overlays" / "production"
KEDA_CRD = SCHEMAS / "keda" / "keda.sh_scaledobjects.yaml"
KEDA_GROUP = "keda.sh"
REPLICA_SET_MEMBERS = 3
REPLICA_SET_NAME = "rs0"
ZONE = "topology.kubernetes.io/zone"
MIN_REPLICAS = 2
MONITORING_PORT = 8222
# The published images (images.yml): ghcr.io/<owner>/gittix-<service>; the overlay leaves the
# tag for a release to set.
PUBLISHED_IMAGE = re.compile(r"^ghcr\.io/[a-z0-9-]+/gittix-(?P<service>[a-z0-9-]+):(?P<tag>\S+)$")
UNRELEASED = "unreleased"
# KEDA's operator as its Helm chart installs it.
KEDA_OPERATOR = Peer(
    "keda-operator", "keda", {"app.kubernetes.io/name": "keda-operator"}, "10.1.0.9"
)


def listeners_by_service() -> dict[str, set[str]]:
    """Each data service's durable consumers, from its CONTRACT (none: it only publishes)."""
    contracts = {contract.name: contract for contract in load_contracts()}
    return {
        service: {listener.durable_name(service) for listener in contracts[service].listeners}
        for service in DATA_SERVICES
    }


# ------------------------------------------------------------------------------------ schemas


def _strict(schema: Any) -> Any:
    """The CRD's schema as the API server applies it with strict field validation: a field the
    schema does not name is an error (unless the schema keeps unknown fields)."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in strict
            and "additionalProperties" not in strict
            and not strict.get("x-kubernetes-preserve-unknown-fields")
        ):
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def keda_schemas(path: Path = KEDA_CRD) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> the vendored CRD's openAPIV3Schema, made strict."""
    crd = next(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return {
        (f"{group}/{version['name']}", kind): _strict(version["schema"]["openAPIV3Schema"])
        for version in crd["spec"]["versions"]
        if version.get("served")
    }


def production_schema_problems(objects: list[Manifest]) -> list[str]:
    """Built-in kinds strictly against Kubernetes' schemas; KEDA's against its vendored CRD; a
    keda.sh kind whose CRD is not vendored is a problem (nothing would validate it)."""
    schemas = keda_schemas()
    problems = schema_problems(
        [o for o in objects if not str(o.get("apiVersion", "")).startswith(KEDA_GROUP + "/")]
    )
    for obj in objects:
        api_version = str(obj.get("apiVersion", ""))
        if not api_version.startswith(KEDA_GROUP + "/"):
            continue
        schema = schemas.get((api_version, obj.get("kind", "")))
        if schema is None:
            problems.append(f"{label(obj)}: no vendored CRD schema for {api_version}")
            continue
        for error in jsonschema.Draft7Validator(schema).iter_errors(obj):
            path = ".".join(str(p) for p in error.absolute_path)
            problems.append(f"{label(obj)}: {path}: {error.message}")
    return problems


# ------------------------------------------------------------------------------- replica sets


def _env(container: Manifest) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _secret_refs(container: Manifest) -> set[str]:
    return {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}


def _zone_spread(spec: Manifest) -> bool:
    return any(
        c.get("topologyKey") == ZONE and c.get("whenUnsatisfiable") == "DoNotSchedule"
        for c in spec.get("topologySpreadConstraints", [])
    )


def _pdb_for(objects: list[Manifest], labels: dict[str, str]) -> Manifest | None:
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        wanted = pdb["spec"].get("selector", {}).get("matchLabels", {})
        if wanted and all(labels.get(k) == v for k, v in wanted.items()):
            return pdb
    return None


def replica_set_problems(objects: list[Manifest]) -> list[str]:
    """Each data service's MongoDB is a 3-member replica set: --replSet, a keyfile from the
    set's own Secret, one member per zone, a disruption budget that keeps a majority, and an
    init Job whose member list is exactly the StatefulSet's pods."""
    problems = []
    for service in DATA_SERVICES:
        name = f"{service}-mongo"
        mongo = find(objects, "StatefulSet", name)
        if mongo is None:
            problems.append(f"{name}: no StatefulSet")
            continue
        replicas = mongo["spec"].get("replicas", 1)
        if replicas != REPLICA_SET_MEMBERS:
            problems.append(f"{name}: {replicas} member(s), a replica set needs 3")
        spec = pod_spec(mongo)
        args = spec["containers"][0].get("args", [])
        if _flag(args, "--replSet") != REPLICA_SET_NAME:
            problems.append(f"{name}: mongod is not started with --replSet {REPLICA_SET_NAME}")
        problems += _keyfile_problems(name, spec, _flag(args, "--keyFile"))
        if not _zone_spread(spec):
            problems.append(f"{name}: members are not spread across zones")
        pdb = _pdb_for(objects, mongo["spec"]["template"]["metadata"].get("labels", {}))
        if pdb is None or pdb["spec"].get("maxUnavailable") != 1:
            problems.append(f"{name}: no disruption budget keeping a majority (maxUnavailable 1)")
        problems += _init_job_problems(objects, service, mongo)
    return problems


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args[:-1] else None


def _keyfile_problems(name: str, spec: Manifest, keyfile: str | None) -> list[str]:
    if keyfile is None:
        return [f"{name}: no --keyFile (members of a set with auth must prove themselves)"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounted = [
        m
        for m in spec["containers"][0].get("volumeMounts", [])
        if keyfile.startswith(m["mountPath"].rstrip("/") + "/")
    ]
    if not mounted:
        return [f"{name}: the keyfile {keyfile} is on no volume"]
    # The keyfile's volume is filled from the set's own Secret by an init container.
    secrets = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v} & {
        f"{name}-keyfile"
    }
    fillers = [
        c
        for c in spec.get("initContainers", [])
        if any(m["name"] == mounted[0]["name"] for m in c.get("volumeMounts", []))
    ]
    if not secrets or not fillers:
        return [f"{name}: the keyfile does not come from the Secret {name}-keyfile"]
    return []


def _init_job_problems(objects: list[Manifest], service: str, mongo: Manifest) -> list[str]:
    name = mongo["metadata"]["name"]
    job = find(objects, "Job", f"{name}-init")
    if job is None:
        return [f"{name}: no Job {name}-init to run rs.initiate"]
    container = pod_spec(job)["containers"][0]
    problems = []
    members = _env(container).get("MEMBERS", "").split(",")
    headless = mongo["spec"]["serviceName"]
    wanted = [f"{name}-{i}.{headless}:27017" for i in range(mongo["spec"].get("replicas", 1))]
    if members != wanted:
        problems.append(f"{name}-init: members {members} are not the StatefulSet's {wanted}")
    if f"{name}-credentials" not in _secret_refs(container):
        problems.append(f"{name}-init: does not sign in with {name}-credentials")
    if "rs.initiate" not in " ".join(container.get("command", []) + container.get("args", [])):
        problems.append(f"{name}-init: never runs rs.initiate")
    return problems


# -------------------------------------------------------------------------------- autoscaling


def _targets(objects: list[Manifest]) -> list[tuple[Manifest, str, str]]:
    """(autoscaler, kind of its target, name of its target) for every HPA and ScaledObject."""
    found = []
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        found.append((hpa, ref.get("kind", ""), ref.get("name", "")))
    for scaled in of_kind(objects, "ScaledObject"):
        ref = scaled["spec"]["scaleTargetRef"]
        found.append((scaled, ref.get("kind", "Deployment"), ref.get("name", "")))
    return found


def autoscaling_problems(
    objects: list[Manifest], consumers: dict[str, set[str]] | None = None
) -> list[str]:
    """Every Deployment has exactly one autoscaler, at least 2 replicas, scaling on CPU; every
    service that listens is scaled by a ScaledObject on the lag of exactly its own durable
    consumers (its CONTRACT's), read from a NATS monitoring port that exists."""
    consumers = listeners_by_service() if consumers is None else consumers
    problems = []
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    scalers: dict[str, list[Manifest]] = {}
    for scaler, kind, name in _targets(objects):
        if kind != "Deployment" or name not in deployments:
            problems.append(f"{label(scaler)}: scales {kind}/{name}, which is not rendered")
            continue
        scalers.setdefault(name, []).append(scaler)
    for name, deployment in deployments.items():
        mine = scalers.get(name, [])
        if len(mine) != 1:
            problems.append(
                f"Deployment/{name}: {len(mine)} autoscalers ({', '.join(map(label, mine))}), "
                "needs exactly one"
            )
        if "replicas" in deployment["spec"]:
            problems.append(f"Deployment/{name}: sets replicas, which its autoscaler owns")
        if _pdb_for(objects, deployment["spec"]["template"]["metadata"].get("labels", {})) is None:
            problems.append(f"Deployment/{name}: no PodDisruptionBudget")
    for scaler in (s for group in scalers.values() for s in group):
        problems += _scaler_problems(objects, scaler)
    for service, durables in consumers.items():
        if not durables:
            continue
        scaled = [s for s in scalers.get(service, []) if s["kind"] == "ScaledObject"]
        if not scaled:
            problems.append(f"{service}: listens but is not scaled on its consumers' lag")
            continue
        problems += _lag_problems(objects, scaled[0], service, durables)
    return problems


def _scaler_problems(objects: list[Manifest], scaler: Manifest) -> list[str]:
    spec = scaler["spec"]
    if scaler["kind"] == "HorizontalPodAutoscaler":
        low, high = spec.get("minReplicas", 1), spec["maxReplicas"]
        cpu = any(
            m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
            for m in spec.get("metrics", [])
        )
    else:
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        cpu = any(t["type"] == "cpu" for t in spec["triggers"])
    problems = []
    if low < MIN_REPLICAS:
        problems.append(f"{label(scaler)}: may scale down to {low}, fewer than {MIN_REPLICAS}")
    if high < low:
        problems.append(f"{label(scaler)}: its maximum {high} is below its minimum {low}")
    if not cpu:
        problems.append(f"{label(scaler)}: does not scale on CPU")
    return problems


def _lag_problems(
    objects: list[Manifest], scaled: Manifest, service: str, durables: set[str]
) -> list[str]:
    problems = []
    triggers = [t for t in scaled["spec"]["triggers"] if t["type"] == "nats-jetstream"]
    named = {t["metadata"].get("consumer", "") for t in triggers}
    for consumer in sorted(named - durables):
        problems.append(f"{label(scaled)}: {consumer} is not a consumer of {service}")
    for consumer in sorted(durables - named):
        problems.append(f"{label(scaled)}: the lag of {consumer} is not watched")
    for trigger in triggers:
        meta = trigger["metadata"]
        where = f"{label(scaled)}: {meta.get('consumer')}"
        if meta.get("stream") != STREAM_NAME:
            problems.append(f"{where}: stream {meta.get('stream')!r} is not {STREAM_NAME}")
        if not str(meta.get("lagThreshold", "")).isdigit() or int(meta["lagThreshold"]) < 1:
            problems.append(f"{where}: lagThreshold {meta.get('lagThreshold')!r}")
        problems += _monitoring_problems(objects, where, meta.get("natsServerMonitoringEndpoint"))
    return problems


def _monitoring_problems(objects: list[Manifest], where: str, endpoint: str | None) -> list[str]:
    address = urlsplit(f"//{endpoint or ''}")
    host = (address.hostname or "").split(".")
    if len(host) < 2 or host[1] != NAMESPACE:
        return [f"{where}: monitoring endpoint {endpoint!r} is not a Service of {NAMESPACE}"]
    service = find(objects, "Service", host[0])
    ports = [p.get("port") for p in (service or {}).get("spec", {}).get("ports", [])]
    if service is None or address.port not in ports or address.port != MONITORING_PORT:
        return [f"{where}: {endpoint} is not NATS' monitoring port"]
    # KEDA asks the node leading the consumer by its name under this host: a headless Service.
    if service["spec"].get("clusterIP") != "None":
        return [f"{where}: {host[0]} is not headless, so KEDA cannot reach each node"]
    return []


# ---------------------------------------------------------------------- zones, requests, images


def placement_problems(objects: list[Manifest]) -> list[str]:
    """Every service's pods spread across zones; every container (init containers and Jobs
    too) requests CPU and memory and may not use more memory than its limit."""
    problems = []
    for deployment in of_kind(objects, "Deployment"):
        if not _zone_spread(pod_spec(deployment)):
            problems.append(f"{label(deployment)}: pods are not spread across zones")
    workloads = [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet")]
    for workload in [*workloads, *of_kind(objects, "Job")]:
        spec = pod_spec(workload)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                if resource not in resources.get("requests", {}):
                    problems.append(
                        f"{label(workload)}: {container['name']} requests no {resource}"
                    )
                if resource not in resources.get("limits", {}):
                    problems.append(
                        f"{label(workload)}: {container['name']} has no {resource} limit"
                    )
    return problems


def image_problems(objects: list[Manifest]) -> list[str]:
    """Every service runs its published image (ghcr.io/<owner>/gittix-<service>), none the name
    skaffold builds (gittix/<service>)."""
    problems = []
    services = {s.name for s in SERVICES}
    running: dict[str, str] = {}
    for workload in [*of_kind(objects, "Deployment"), *of_kind(objects, "StatefulSet")]:
        for container in pod_spec(workload)["containers"]:
            image = container["image"]
            match = PUBLISHED_IMAGE.match(image)
            if image.startswith("gittix/"):
                problems.append(f"{label(workload)}: runs {image}, which is never published")
            elif match:
                running[workload["metadata"]["name"]] = match["service"]
    for service in sorted(services):
        if running.get(service) != service:
            problems.append(f"Deployment/{service}: does not run ghcr.io/.../gittix-{service}")
    return problems


# ------------------------------------------------------------------------------------ network


def job_peers(objects: list[Manifest]) -> list[Peer]:
    return [
        Peer(
            job["metadata"]["name"],
            NAMESPACE,
            dict(job["spec"]["template"]["metadata"].get("labels", {})),
            f"10.0.1.{index + 1}",
        )
        for index, job in enumerate(of_kind(objects, "Job"))
    ]


def production_network_problems(objects: list[Manifest]) -> list[str]:
    """The base's connection matrix, plus exactly what production adds: each replica set's
    members reach each other, its init Job reaches its members (no other MongoDB), KEDA's
    operator reaches NATS' monitoring port. Anything else allowed or denied is a problem."""
    workloads = workload_peers(objects)
    jobs = job_peers(objects)
    wanted = expected_connections(objects, INGRESS_NGINX)
    for service in DATA_SERVICES:
        wanted.add((f"{service}-mongo-init", f"{service}-mongo", 27017))
    for job in jobs:
        wanted.add((job.name, KUBE_DNS.name, 53))
    wanted.add((KEDA_OPERATOR.name, "nats", MONITORING_PORT))
    sources = [*workloads, *jobs, INGRESS_NGINX, GATEWAY_NGINX, INTRUDER, OUTSIDER, KEDA_OPERATOR]
    destinations = [*workloads, INTRUDER, KUBE_DNS, STRIPE, NODE_METADATA]
    problems = []
    for source in sources:
        reachable = destinations if source.namespace == NAMESPACE else workloads
        for destination in (d for d in reachable if d is not source):
            for port in sorted(set(destination.ports.values()) | {53, 443, 80}):
                protocols = ("TCP", "UDP") if port == 53 else ("TCP",)
                allowed = all(may_connect(objects, source, destination, port, p) for p in protocols)
                expected = (source.name, destination.name, port) in wanted
                if allowed != expected:
                    problems.append(
                        f"{source.name} -> {destination.name}:{port} is "
                        f"{'allowed' if allowed else 'denied'}, expected "
                        f"{'allowed' if expected else 'denied'}"
                    )
    # A member and another member of the same set: two pods of one StatefulSet.
    for member in (w for w in workloads if w.name.endswith("-mongo")):
        other = Peer(member.name, member.namespace, member.labels, "10.0.2.1", member.ports)
        if not may_connect(objects, member, other, 27017):
            problems.append(f"{member.name}: its members cannot replicate to each other")
    return problems


def rendered_names(objects: Iterable[Manifest]) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in objects}
