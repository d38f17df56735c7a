"""The offline Kubernetes checks: each returns the problems it finds (empty means the check passes).

The tests run every check on the real files and then on deliberately broken copies, so a check
that cannot fail is noticed.
"""

import base64
import functools
import importlib
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import yaml
from common.bus_permissions import ADMIN_USER, authorization_config, every_user
from common.catalog import load_contracts
from devserver.routing import CONTAINER_PORT, ROUTES, SERVICES, Route
from kubernetes_validate.utils import SchemaNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
# Vendored, so a clone checks itself offline with nothing beside it.
SCHEMAS = Path(__file__).parent / "schemas"
SKAFFOLD_SCHEMA = SCHEMAS / "skaffold-v4beta14.json"
GATEWAY_SCHEMA = SCHEMAS / "gateway-api-v1.json"
KUBERNETES_VERSION = "1.33.0"
BASE = REPO_ROOT / "infra" / "k8s"
GATEWAY_OVERLAY = REPO_ROOT / "infra" / "overlays" / "gateway-api"
HOST = "ticketing.localhost"
IMAGE_PREFIX = "gittix/"
GATEWAY_GROUP = "gateway.networking.k8s.io"
DATA_SERVICES = tuple(s.name for s in SERVICES if s.owns_data)

Manifest = dict[str, Any]


# ---------------------------------------------------------------------------------------- tools


def tool(name: str) -> str:
    """A command-line tool from the workspace's environment (installed by `make install`)."""
    beside_python = Path(sys.executable).parent / name
    found = str(beside_python) if beside_python.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: run `make install`")
    return found


def kustomize(path: Path) -> list[Manifest]:
    """`kubectl kustomize path`, parsed; raises with kustomize's message when it fails."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_json(path: Path) -> Any:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the schemas are vendored under tests/infra/schemas/"
        )
    return json.loads(path.read_text())


def find(objects: Iterable[Manifest], kind: str, name: str) -> Manifest | None:
    for obj in objects:
        if obj.get("kind") == kind and obj.get("metadata", {}).get("name") == name:
            return obj
    return None


def of_kind(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [obj for obj in objects if obj.get("kind") == kind]


def label(obj: Manifest) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# -------------------------------------------------------------------------------------- schemas


def schema_problems(objects: Iterable[Manifest], version: str = KUBERNETES_VERSION) -> list[str]:
    """Strict schema validation: built-in kinds against Kubernetes `version`, Gateway API kinds
    against the Gateway API v1 schema. A kind or apiVersion the cluster would not know fails."""
    gateway = jsonschema.Draft202012Validator(load_json(GATEWAY_SCHEMA))
    problems = []
    for obj in objects:
        where = label(obj)
        if str(obj.get("apiVersion", "")).startswith(GATEWAY_GROUP + "/"):
            for error in gateway.iter_errors(obj):
                path = ".".join(str(p) for p in error.absolute_path)
                problems.append(f"{where}: {path}: {error.message}")
            continue
        found = _kubernetes_problems(json.dumps(obj, sort_keys=True), version)
        problems.extend(f"{where}: {problem}" for problem in found)
    return problems


@functools.cache
def _kubernetes_problems(document: str, version: str) -> tuple[str, ...]:
    """One object (as JSON) strictly against Kubernetes `version`'s schema. Cached by content:
    kubernetes_validate reads the whole definitions file for every object, and the suite checks
    the same rendered objects many times (each broken copy differs from the real render in one
    object only)."""
    obj = json.loads(document)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except SchemaNotFoundError:
        return (f"no {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes {version}",)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(p) for p in error.absolute_path)
        return (f"{path}: {error.message}",)
    return ()


# ----------------------------------------------------------------------------------- workloads


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def main_container(workload: Manifest) -> Manifest:
    container: Manifest = pod_spec(workload)["containers"][0]
    return container


@dataclass(frozen=True)
class EnvSource:
    """Where one environment variable of a container comes from."""

    kind: str  # "value", "configMap", "secret", "field"
    value: str | None = None
    name: str | None = None
    key: str | None = None
    optional: bool = False


def container_env(container: Manifest, objects: list[Manifest]) -> dict[str, EnvSource]:
    """Every variable a container gets, from env and from envFrom ConfigMaps/Secrets."""
    env: dict[str, EnvSource] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]
            config = find(objects, "ConfigMap", ref["name"])
            for key, val in (config or {}).get("data", {}).items():
                env[source.get("prefix", "") + key] = EnvSource("value", value=str(val))
        elif "secretRef" in source:
            secret_name = source["secretRef"]["name"]
            env_prefix = source.get("prefix", "")
            env[f"{env_prefix}<all keys of {secret_name}>"] = EnvSource("secret", name=secret_name)
    for item in container.get("env", []):
        value_from = item.get("valueFrom")
        if value_from is None:
            env[item["name"]] = EnvSource("value", value=str(item.get("value", "")))
        elif "secretKeyRef" in value_from:
            ref = value_from["secretKeyRef"]
            env[item["name"]] = EnvSource(
                "secret", name=ref["name"], key=ref["key"], optional=ref.get("optional", False)
            )
        elif "configMapKeyRef" in value_from:
            ref = value_from["configMapKeyRef"]
            config = find(objects, "ConfigMap", ref["name"])
            value = (config or {}).get("data", {}).get(ref["key"])
            env[item["name"]] = EnvSource(
                "configMap", value=value, name=ref["name"], key=ref["key"]
            )
        else:
            env[item["name"]] = EnvSource("field")
    return env


def settings_class(service: str) -> type:
    """The service's pydantic-settings class (`<service>.settings.Settings`)."""
    module = importlib.import_module(f"{service}.settings")
    settings: type = module.Settings
    return settings


def required_env(settings: type) -> set[str]:
    """What a Deployment must set: the class's `deployment_env` plus every field with no default."""
    prefix = str(getattr(settings, "model_config", {}).get("env_prefix", ""))
    required = set(getattr(settings, "deployment_env", ()))
    for name, info in settings.model_fields.items():  # type: ignore[attr-defined]
        if info.is_required():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            required.add((alias or prefix + name).upper())
    return required


def env_problems(service: str, objects: list[Manifest], required: set[str]) -> list[str]:
    deployment = find(objects, "Deployment", service)
    if deployment is None:
        return [f"{service}: no Deployment"]
    problems = []
    env = container_env(main_container(deployment), objects)
    for name in sorted(required - set(env)):
        problems.append(f"{service}: the Deployment does not set {name}, which the service needs")
    for name, source in env.items():
        if source.kind == "configMap" and source.value is None:
            problems.append(f"{service}: {name} refers to {source.name}/{source.key}, not there")
    return problems


def resolved_env(
    service: str, objects: list[Manifest], secrets: list[Manifest]
) -> dict[str, str | None]:
    """The environment the service's container would really get (None: variable left unset)."""
    deployment = find(objects, "Deployment", service)
    assert deployment is not None, f"{service}: no Deployment"
    resolved: dict[str, str | None] = {}
    for name, source in container_env(main_container(deployment), objects).items():
        if source.kind == "secret":
            secret = find(secrets, "Secret", source.name or "")
            data = (secret or {}).get("data", {})
            if source.key in data:
                resolved[name] = base64.b64decode(data[source.key]).decode()
            elif source.optional:
                resolved[name] = None
            else:
                raise LookupError(
                    f"{service}: {name} needs Secret {source.name} key {source.key}, "
                    "which `make k8s-secrets` does not create"
                )
        else:
            resolved[name] = source.value
    return resolved


def _port_number(container: Manifest, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


def port_problems(service: str, objects: list[Manifest], app_paths: set[str]) -> list[str]:
    """The container listens where the app does, probes ask paths the app serves, the Service
    and its targetPort lead to that port."""
    deployment = find(objects, "Deployment", service)
    if deployment is None:
        return [f"{service}: no Deployment"]
    container = main_container(deployment)
    problems = []
    ports = [p["containerPort"] for p in container.get("ports", [])]
    if ports != [CONTAINER_PORT]:
        problems.append(f"{service}: container ports {ports}, the app listens on {CONTAINER_PORT}")
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe_name, path in expected.items():
        probe = container.get(probe_name)
        if probe is None or "httpGet" not in probe:
            problems.append(f"{service}: no HTTP {probe_name}")
            continue
        get = probe["httpGet"]
        probe_path = str(get.get("path", "")).split("?")[0]
        if probe_path != path:
            problems.append(f"{service}: {probe_name} asks {get.get('path')}, expected {path}")
        if probe_path not in app_paths:
            problems.append(f"{service}: {probe_name} path {probe_path} is not served by the app")
        if _port_number(container, get.get("port")) != CONTAINER_PORT:
            problems.append(f"{service}: {probe_name} port {get.get('port')} is not the app's")
    svc = find(objects, "Service", service)
    if svc is None:
        problems.append(f"{service}: no Service")
    else:
        selector = svc["spec"].get("selector", {})
        pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        if not selector or any(pod_labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{service}: the Service selector does not match the pods")
        for port in svc["spec"].get("ports", []):
            if _port_number(container, port.get("targetPort", port["port"])) != CONTAINER_PORT:
                problems.append(f"{service}: Service port {port['port']} misses the container")
    return problems


def security_problems(objects: list[Manifest]) -> list[str]:
    """Every workload runs as non-root with a read-only root filesystem, no privilege escalation,
    no capabilities, resource requests and limits; stateless services also get /tmp, a graceful
    shutdown and a PodDisruptionBudget when they have several replicas."""
    problems = []
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        where = label(workload)
        spec = pod_spec(workload)
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not set")
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: the root filesystem is writable")
            if context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not all dropped")
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(kind, {}):
                        problems.append(f"{where}: no {resource} {kind}")
        if workload["kind"] != "Deployment":
            continue
        container = spec["containers"][0]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        if not tmp or "emptyDir" not in volumes.get(tmp[0]["name"], {}):
            problems.append(f"{where}: no emptyDir at /tmp")
        if "preStop" not in container.get("lifecycle", {}):
            problems.append(f"{where}: no preStop hook to drain connections")
        if "terminationGracePeriodSeconds" not in spec:
            problems.append(f"{where}: no terminationGracePeriodSeconds")
        if workload["spec"].get("replicas", 1) > 1 and not _has_pdb(workload, objects):
            problems.append(f"{where}: several replicas but no PodDisruptionBudget")
    return problems


def _has_pdb(workload: Manifest, objects: list[Manifest]) -> bool:
    pod_labels = workload["spec"]["template"]["metadata"].get("labels", {})
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        wanted = pdb["spec"].get("selector", {}).get("matchLabels", {})
        if wanted and all(pod_labels.get(k) == v for k, v in wanted.items()):
            return True
    return False


def replica_problems(objects: list[Manifest], replicas: int = 2) -> list[str]:
    problems = []
    for service in SERVICES:
        deployment = find(objects, "Deployment", service.name)
        if deployment is not None and deployment["spec"].get("replicas", 1) != replicas:
            problems.append(f"{service.name}: {deployment['spec'].get('replicas')} replicas")
    return problems


def env_value(
    workload: Manifest, name: str, objects: list[Manifest], secrets: list[Manifest]
) -> str | None:
    """One variable of a workload's main container as the pod would get it (None: unset, or
    from a Secret or key that `make k8s-secrets` does not make)."""
    source = container_env(main_container(workload), objects).get(name)
    if source is None:
        return None
    if source.kind != "secret":
        return source.value
    return secret_value(secrets, source.name or "", source.key or "")


def secret_value(secrets: list[Manifest], name: str, key: str) -> str | None:
    data = (find(secrets, "Secret", name) or {}).get("data", {})
    return base64.b64decode(data[key]).decode() if key in data else None


def env_from_secret(workload: Manifest, secrets: list[Manifest]) -> dict[str, str]:
    """Every key of the Secrets a workload's main container takes whole (envFrom secretRef)."""
    values: dict[str, str] = {}
    for source in main_container(workload).get("envFrom", []):
        if "secretRef" in source:
            secret = find(secrets, "Secret", source["secretRef"]["name"]) or {}
            for key, value in secret.get("data", {}).items():
                values[source.get("prefix", "") + key] = base64.b64decode(value).decode()
    return values


MONGO_INIT_DIR = "/docker-entrypoint-initdb.d"


def mongo_problems(objects: list[Manifest], secrets: list[Manifest]) -> list[str]:
    """Each data service's MONGO_URL points at its own MongoDB StatefulSet with storage, and
    authenticates there as a user of its own: the MongoDB runs with a root user (so with
    authentication), and its init script creates the service's user with readWrite on the
    service's database only, the same user and password as in MONGO_URL."""
    problems = []
    owners: dict[str, str] = {}
    for service in DATA_SERVICES:
        deployment = find(objects, "Deployment", service)
        if deployment is None:
            problems.append(f"{service}: no Deployment")
            continue
        url = env_value(deployment, "MONGO_URL", objects, secrets)
        if not url:
            problems.append(f"{service}: no MONGO_URL")
            continue
        parts = urlsplit(url)
        host = parts.hostname or ""
        service_name = host.split(".")[-1] if host.count(".") == 1 else host.split(".")[0]
        if service_name in owners:
            problems.append(f"{service}: shares MongoDB {service_name} with {owners[service_name]}")
        owners[service_name] = service
        if service_name != f"{service}-mongo":
            problems.append(f"{service}: MONGO_URL points at {host}, not its own {service}-mongo")
        headless = find(objects, "Service", service_name)
        if headless is None or headless["spec"].get("clusterIP") != "None":
            problems.append(f"{service}: no headless Service {service_name}")
        statefulset = find(objects, "StatefulSet", service_name)
        if statefulset is None:
            problems.append(f"{service}: no MongoDB StatefulSet {service_name}")
            continue
        if statefulset["spec"].get("serviceName") != service_name:
            problems.append(f"{service}: {service_name} is not governed by its headless Service")
        claims = [
            c["metadata"]["name"] for c in statefulset["spec"].get("volumeClaimTemplates", [])
        ]
        mounts = {
            m["name"]: m["mountPath"] for m in main_container(statefulset).get("volumeMounts", [])
        }
        if not any(mounts.get(claim) == "/data/db" for claim in claims):
            problems.append(f"{service}: {service_name} keeps /data/db on no persistent volume")
        problems += _mongo_auth_problems(service, parts, statefulset, objects, secrets)
    client = find(objects, "Deployment", "client")
    if client is not None:
        env = container_env(main_container(client), objects)
        for name in ("MONGO_URL", "NATS_URL"):
            if name in env:
                problems.append(f"client: has {name}, but the client owns no data and no bus")
    return problems


def _mongo_auth_problems(
    service: str,
    url: Any,
    statefulset: Manifest,
    objects: list[Manifest],
    secrets: list[Manifest],
) -> list[str]:
    name = statefulset["metadata"]["name"]
    problems = []
    env = env_from_secret(statefulset, secrets)
    root = env.get("MONGO_INITDB_ROOT_USERNAME")
    if not root or not env.get("MONGO_INITDB_ROOT_PASSWORD"):
        problems.append(f"{service}: {name} runs without authentication (no root user)")
    database = url.path.strip("/")
    if not url.username or not url.password:
        problems.append(f"{service}: MONGO_URL carries no user and password")
    elif url.username == root:
        problems.append(f"{service}: MONGO_URL uses {name}'s root user")
    elif (url.username, url.password, database) != (
        env.get("GITTIX_MONGO_USERNAME"),
        env.get("GITTIX_MONGO_PASSWORD"),
        env.get("GITTIX_MONGO_DATABASE"),
    ):
        problems.append(f"{service}: MONGO_URL's user is not the one {name} creates")
    if database != service:
        problems.append(f"{service}: MONGO_URL names database {database!r}, not {service!r}")
    spec = pod_spec(statefulset)
    mounts = {
        m["name"]: m["mountPath"] for m in main_container(statefulset).get("volumeMounts", [])
    }
    scripts = "".join(
        "".join((find(objects, "ConfigMap", v["configMap"]["name"]) or {}).get("data", {}).values())
        for v in spec.get("volumes", [])
        if "configMap" in v and mounts.get(v["name"]) == MONGO_INIT_DIR
    )
    wanted = ("createUser", "readWrite", "GITTIX_MONGO_USERNAME", "GITTIX_MONGO_DATABASE")
    if not all(word in scripts for word in wanted):
        problems.append(f"{service}: {name} has no init script creating the service's own user")
    return problems


def nats_config_files(objects: list[Manifest]) -> dict[str, str]:
    """The files of the NATS nodes' configuration ConfigMap, by name."""
    statefulset = find(objects, "StatefulSet", "nats")
    volume = next(
        (
            v
            for v in pod_spec(statefulset or {"spec": {"template": {"spec": {}}}}).get(
                "volumes", []
            )
            if "configMap" in v
        ),
        None,
    )
    config = find(objects, "ConfigMap", volume["configMap"]["name"]) if volume else None
    return dict((config or {}).get("data", {}))


def nats_problems(objects: list[Manifest], secrets: list[Manifest]) -> list[str]:
    """A 3-node JetStream cluster with storage, fsync on every write, health probes, and the
    services told to replicate the stream on every node; clients only with a user (the
    generated nats-users.conf, passwords from the nats-users Secret), each service as its own."""
    statefulset = find(objects, "StatefulSet", "nats")
    if statefulset is None:
        return ["no NATS StatefulSet"]
    problems = []
    replicas = statefulset["spec"].get("replicas", 1)
    if replicas != 3:
        problems.append(f"NATS has {replicas} nodes, not 3")
    if not statefulset["spec"].get("volumeClaimTemplates"):
        problems.append("NATS stores JetStream on no persistent volume")
    container = main_container(statefulset)
    for probe_name in ("livenessProbe", "readinessProbe"):
        get = container.get(probe_name, {}).get("httpGet", {})
        if get.get("path") != "/healthz?js-enabled-only=true":
            problems.append(f"NATS {probe_name} does not ask /healthz?js-enabled-only=true")
        if _port_number(container, get.get("port", "")) != 8222:
            problems.append(f"NATS {probe_name} is not on the monitoring port 8222")
    files = nats_config_files(objects)
    text = files.get("nats.conf", "")
    jetstream = re.search(r"jetstream\s*\{(.*?)\}", text, re.S)
    if jetstream is None:
        problems.append("NATS config has no jetstream block")
    elif not re.search(r"^\s*sync_interval:\s*always\s*$", jetstream.group(1), re.M):
        problems.append("NATS JetStream does not fsync every write (sync_interval: always)")
    headless = statefulset["spec"].get("serviceName")
    routes = set(re.findall(r"nats://([\w.-]+):6222", text))
    wanted = {f"nats-{i}.{headless}" for i in range(replicas)}
    if routes != wanted:
        problems.append(f"NATS cluster routes {sorted(routes)} are not the nodes {sorted(wanted)}")
    if not re.search(r"^include \./nats-users\.conf$", text, re.M) or (
        "authorization" not in files.get("nats-users.conf", "")
    ):
        problems.append("NATS admits anyone: nats.conf includes no nats-users.conf with users")
    passwords = env_from_secret(statefulset, secrets)
    for user in re.findall(r'user: "([\w-]+)"', files.get("nats-users.conf", "")):
        if not passwords.get(f"NATS_PASSWORD_{user.upper()}"):
            problems.append(f"NATS user {user} has no password in the nats-users Secret")
    for deployment in of_kind(objects, "Deployment"):
        env = container_env(main_container(deployment), objects)
        if "NATS_URL" not in env:
            continue
        stream = env.get("NATS_STREAM_REPLICAS")
        if stream is None or stream.value != str(replicas):
            problems.append(f"{label(deployment)}: NATS_STREAM_REPLICAS is not {replicas}")
        url = urlsplit(env_value(deployment, "NATS_URL", objects, secrets) or "")
        host = url.hostname or ""
        nats_service = find(objects, "Service", host.split(".")[0])
        if nats_service is None or 4222 not in [p["port"] for p in nats_service["spec"]["ports"]]:
            problems.append(f"{label(deployment)}: NATS_URL host {host} is no NATS Service")
        service = deployment["metadata"]["name"]
        if url.username != service:
            problems.append(f"{label(deployment)}: NATS_URL is not as its own user {service}")
        elif url.password != passwords.get(f"NATS_PASSWORD_{service.upper()}"):
            problems.append(f"{label(deployment)}: NATS_URL has not {service}'s password")
    return problems


def bus_user_problems(objects: list[Manifest]) -> list[str]:
    """The cluster's NATS users are exactly those the services' contracts give
    (common.bus_permissions), and no service may publish or subscribe by wildcard beyond its own
    acknowledgements and its own inbox."""
    text = nats_config_files(objects).get("nats-users.conf", "")
    problems = []
    if text != authorization_config(every_user(load_contracts())):
        problems.append("nats-users.conf is not what the services' contracts give (make docs)")
    for user, publish, subscribe in re.findall(
        r'user: "([\w-]+)".*?publish: \{allow: \[(.*?)\]\}.*?subscribe: \{allow: \[(.*?)\]\}',
        text,
        re.S,
    ):
        if user == ADMIN_USER:
            continue
        for subject in re.findall(r'"([^"]+)"', publish):
            own_acks = subject.startswith(f"$JS.ACK.TICKETING.{user}-") and subject.endswith(".>")
            if ("*" in subject or ">" in subject) and not own_acks:
                problems.append(f"NATS user {user} may publish to {subject}")
        for subject in re.findall(r'"([^"]+)"', subscribe):
            if subject != f"_INBOX_{user}.>":
                problems.append(f"NATS user {user} may subscribe to {subject}")
    return problems


# ----------------------------------------------------------------------------- network policies

NAMESPACE = "gittix"


@dataclass
class Peer:
    """Something that may open a connection or accept one: a pod (with its namespace, labels
    and named ports) or an address outside the cluster (namespace None)."""

    name: str
    namespace: str | None
    labels: dict[str, str]
    ip: str
    ports: dict[str, int] = field(default_factory=dict)


# Outside GitTix's namespace, or pods nobody declared in it: what the policies are judged by.
INGRESS_NGINX = Peer(
    "ingress-nginx",
    "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    "10.1.0.1",
)
# NGINX Gateway Fabric runs the Gateway's NGINX in the Gateway's namespace, labelled with it.
GATEWAY_NGINX = Peer(
    "gateway-nginx", NAMESPACE, {"gateway.networking.k8s.io/gateway-name": "ticketing"}, "10.1.0.2"
)
KUBE_DNS = Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, "10.1.0.3", {"dns": 53})
STRIPE = Peer("stripe", None, {}, "54.187.174.169")
# A pod someone else runs in the namespace, with no policy of its own: the default deny must
# keep it from reaching anything, and anything from reaching it.
INTRUDER = Peer(
    "intruder", NAMESPACE, {"app.kubernetes.io/name": "intruder"}, "10.1.0.4", {"http": 8080}
)
OUTSIDER = Peer("outsider", "default", {"app": "outsider"}, "10.1.0.5")
NODE_METADATA = Peer("metadata", None, {}, "169.254.169.254")


def workload_peers(objects: list[Manifest]) -> list[Peer]:
    peers = []
    for index, workload in enumerate(
        of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")
    ):
        ports = {
            port.get("name", str(port["containerPort"])): int(port["containerPort"])
            for container in pod_spec(workload)["containers"]
            for port in container.get("ports", [])
        }
        labels = dict(workload["spec"]["template"]["metadata"].get("labels", {}))
        peers.append(
            Peer(workload["metadata"]["name"], NAMESPACE, labels, f"10.0.0.{index + 1}", ports)
        )
    return peers


def _selects(selector: Manifest | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values", []),
        )
        present = key in labels
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _peer_matches(rule_peer: Manifest, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        address = ipaddress.ip_address(peer.ip)
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(cidr)
            for cidr in block.get("except", [])
            if ipaddress.ip_network(cidr).version == address.version
        )
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        namespace_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _selects(rule_peer["namespaceSelector"], namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _selects(rule_peer.get("podSelector"), peer.labels)


def _port_matches(rule: Manifest, destination: Peer, port: int, protocol: str) -> bool:
    if not rule.get("ports"):
        return True
    for allowed in rule["ports"]:
        if allowed.get("protocol", "TCP") != protocol:
            continue
        number = allowed.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            number = destination.ports.get(number)
        if number == port:
            return True
    return False


def _side_allows(
    policies: list[Manifest],
    direction: str,
    selected: Peer,
    other: Peer,
    destination: Peer,
    port: int,
    protocol: str,
) -> bool:
    """Whether `selected`'s policies let the connection through in `direction` (Ingress: from
    `other`; Egress: to `other`). A pod no policy selects for that direction allows anything."""
    if selected.namespace is None:
        return True
    applying = [
        p
        for p in policies
        if p["metadata"].get("namespace", NAMESPACE) == selected.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"].get("podSelector", {}), selected.labels)
    ]
    if not applying:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in applying:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(p, other, policy["metadata"].get("namespace", NAMESPACE))
                for p in peers
            )
            if peer_ok and _port_matches(rule, destination, port, protocol):
                return True
    return False


def may_connect(
    objects: list[Manifest], source: Peer, destination: Peer, port: int, protocol: str = "TCP"
) -> bool:
    policies = of_kind(objects, "NetworkPolicy")
    return _side_allows(
        policies, "Egress", source, destination, destination, port, protocol
    ) and _side_allows(policies, "Ingress", destination, source, destination, port, protocol)


def expected_connections(objects: list[Manifest], entry_point: Peer) -> set[tuple[str, str, int]]:
    """Who should reach whom: the entry point every service on its port; each data service its
    own MongoDB and NATS; payments Stripe on 443; the NATS nodes each other; every pod DNS."""
    wanted: set[tuple[str, str, int]] = set()
    for service in SERVICES:
        wanted.add((entry_point.name, service.name, CONTAINER_PORT))
        if service.owns_data:
            wanted.add((service.name, f"{service.name}-mongo", 27017))
            wanted.add((service.name, "nats", 4222))
    wanted.add(("payments", STRIPE.name, 443))
    wanted.add(("nats", "nats", 6222))
    for peer in [*workload_peers(objects), GATEWAY_NGINX, INTRUDER]:
        wanted.add((peer.name, KUBE_DNS.name, 53))
    return wanted


def network_problems(objects: list[Manifest], entry_point: Peer = INGRESS_NGINX) -> list[str]:
    """Every connection the NetworkPolicies allow among the workloads, the entry point, DNS,
    the internet and pods that should reach nothing (one in the namespace, one outside it),
    compared with `expected_connections`: each difference is a problem."""
    workloads = workload_peers(objects)
    others = [INGRESS_NGINX, GATEWAY_NGINX, INTRUDER, OUTSIDER]
    destinations = [*workloads, INTRUDER, KUBE_DNS, STRIPE, NODE_METADATA]
    wanted = expected_connections(objects, entry_point)
    problems = []
    for source in [*workloads, *others]:
        # A pod outside the namespace is judged only on what it may reach inside it: its own
        # egress is no business of GitTix's policies.
        reachable = destinations if source.namespace == NAMESPACE else workloads
        for destination in (d for d in reachable if d is not source):
            ports = sorted(set(destination.ports.values()) | {53, 443, 80})
            for port in ports:
                protocols = ("TCP", "UDP") if port == 53 else ("TCP",)
                allowed = all(may_connect(objects, source, destination, port, p) for p in protocols)
                expected = (source.name, destination.name, port) in wanted
                if allowed != expected:
                    verdict = "allowed" if allowed else "denied"
                    problems.append(
                        f"{source.name} -> {destination.name}:{port} is {verdict}, "
                        f"expected {'allowed' if expected else 'denied'}"
                    )
    return problems


# -------------------------------------------------------------------------------------- routing


def _service_port_ok(objects: list[Manifest], name: str, port: Manifest | int | None) -> bool:
    service = find(objects, "Service", name)
    if service is None:
        return False
    for declared in service["spec"].get("ports", []):
        if isinstance(port, dict) and (
            declared.get("name") == port.get("name") or declared["port"] == port.get("number")
        ):
            return True
        if isinstance(port, int) and declared["port"] == port:
            return True
    return False


def ingress_problems(objects: list[Manifest], routes: Iterable[Route] = ROUTES) -> list[str]:
    """The Ingress routes exactly `routes` (prefix -> service) for the host, over TLS."""
    ingresses = of_kind(objects, "Ingress")
    if len(ingresses) != 1:
        return [f"{len(ingresses)} Ingresses, expected one"]
    spec = ingresses[0]["spec"]
    problems = []
    if spec.get("ingressClassName") != "nginx":
        problems.append("the Ingress is not for ingress-nginx (ingressClassName: nginx)")
    tls = spec.get("tls", [])
    if not any(HOST in t.get("hosts", []) and t.get("secretName") == "ticketing-tls" for t in tls):
        problems.append(f"the Ingress has no TLS for {HOST} with Secret ticketing-tls")
    table: dict[str, str] = {}
    for rule in spec.get("rules", []):
        if rule.get("host") != HOST:
            problems.append(f"an Ingress rule is for host {rule.get('host')}, not {HOST}")
        for path in rule.get("http", {}).get("paths", []):
            if path.get("pathType") != "Prefix":
                problems.append(f"Ingress path {path.get('path')} is {path.get('pathType')}")
            backend = path["backend"]["service"]
            table[path["path"]] = backend["name"]
            if not _service_port_ok(objects, backend["name"], backend.get("port")):
                problems.append(f"Ingress path {path['path']} goes to no port of {backend['name']}")
    problems += _compare_routes("Ingress", table, routes)
    return problems


def httproute_problems(objects: list[Manifest], routes: Iterable[Route] = ROUTES) -> list[str]:
    """The Gateway terminates TLS for the host, and its HTTPRoute routes exactly `routes`."""
    problems = []
    gateways = of_kind(objects, "Gateway")
    if len(gateways) != 1:
        return [f"{len(gateways)} Gateways, expected one"]
    gateway = gateways[0]
    listeners = {item["name"]: item for item in gateway["spec"]["listeners"]}
    https = [item for item in listeners.values() if item["protocol"] == "HTTPS"]
    if not any(
        item.get("hostname") == HOST
        and any(ref["name"] == "ticketing-tls" for ref in item["tls"].get("certificateRefs", []))
        for item in https
    ):
        problems.append(f"the Gateway has no HTTPS listener for {HOST} with ticketing-tls")
    if of_kind(objects, "Ingress"):
        problems.append("the Gateway variant still has an Ingress")
    table: dict[str, str] = {}
    for route in of_kind(objects, "HTTPRoute"):
        parents = route["spec"].get("parentRefs", [])
        if not all(p["name"] == gateway["metadata"]["name"] for p in parents):
            problems.append(f"{label(route)} is attached to another Gateway")
        sections = {p.get("sectionName") for p in parents}
        if not sections.issubset(listeners):
            problems.append(f"{label(route)} names listeners {sections} the Gateway lacks")
        if HOST not in route["spec"].get("hostnames", []):
            problems.append(f"{label(route)} is not for {HOST}")
        serves_https = any(listeners.get(s, {}).get("protocol") == "HTTPS" for s in sections)
        for rule in route["spec"].get("rules", []):
            backends = rule.get("backendRefs", [])
            if not serves_https:
                if backends:
                    problems.append(f"{label(route)} serves backends over plain HTTP")
                continue
            for match in rule.get("matches", []):
                path = match.get("path", {})
                if path.get("type") != "PathPrefix":
                    problems.append(f"{label(route)}: {path.get('value')} is {path.get('type')}")
                if len(backends) != 1:
                    problems.append(
                        f"{label(route)}: {path.get('value')} has {len(backends)} backends"
                    )
                    continue
                table[path.get("value", "/")] = backends[0]["name"]
                if not _service_port_ok(objects, backends[0]["name"], backends[0].get("port")):
                    problems.append(f"{label(route)}: {path.get('value')} goes to no Service port")
    problems += _compare_routes("HTTPRoute", table, routes)
    return problems


def _compare_routes(what: str, table: dict[str, str], routes: Iterable[Route]) -> list[str]:
    wanted = {route.prefix: route.service for route in routes}
    problems = []
    for prefix, service in sorted(wanted.items()):
        if prefix not in table:
            problems.append(f"{what} does not route {prefix} (make up sends it to {service})")
        elif table[prefix] != service:
            problems.append(f"{what} sends {prefix} to {table[prefix]}, make up to {service}")
    for prefix in sorted(set(table) - set(wanted)):
        problems.append(f"{what} routes {prefix}, which make up does not")
    return problems


# ---------------------------------------------------------------------------------- Dockerfiles

DOCKERFILE = REPO_ROOT / "Dockerfile"
# The build argument naming the service an image is built for (skaffold.yaml passes it).
SERVICE_ARG = "SERVICE"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def dockerfile_stages(
    text: str, build_args: dict[str, str] | None = None
) -> tuple[dict[str, str], list[Stage]]:
    """The global ARG defaults and the stages of a Dockerfile (continuations joined), with
    `${ARG}` expanded as docker does: global ARGs in FROM lines only, inside a stage only ARGs it
    declares (valued from `build_args`, else their default). Other `$NAME`s are left as written
    (the shell's, or an ARG the stage forgot to declare, which then shows in the checks)."""
    given = build_args or {}
    joined = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    scope: dict[str, str] = {}
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG":
            key, _, default = rest.partition("=")
            value = given.get(key, default or (args.get(key, "") if stages else ""))
            (scope if stages else args)[key] = value
        if instruction == "FROM":
            parts_list = _expand(rest, args).split()
            name = (
                parts_list[2]
                if len(parts_list) >= 3 and parts_list[1].upper() == "AS"
                else str(len(stages))
            )
            stages.append(Stage(name=name, base=parts_list[0]))
            scope = {}
        elif stages:
            stages[-1].instructions.append((instruction, _expand(rest, scope)))
    return args, stages


def _expand(text: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        return values.get(match.group(1) or match.group(2), match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _command(args: str) -> list[str]:
    try:
        parsed = json.loads(args)
    except json.JSONDecodeError:
        return shlex.split(args)
    if isinstance(parsed, list) and all(isinstance(part, str) for part in parsed):
        return parsed
    return shlex.split(args)


def _lineage(stage: Stage, stages: dict[str, Stage]) -> list[Stage]:
    chain = [stage]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def _env(lineage: list[Stage]) -> dict[str, str]:
    """The ENV a stage ends with, its ancestors' first (`ENV A=1 B=2` and `ENV A 1`)."""
    env: dict[str, str] = {}
    for stage in reversed(lineage):
        for args_text in stage.all("ENV"):
            parts = shlex.split(args_text)
            if parts and "=" not in parts[0]:
                env[parts[0]] = " ".join(parts[1:])
                continue
            for part in parts:
                key, _, value = part.partition("=")
                env[key] = value
    return env


def dockerfile_problems(service: str, text: str, dev_sources: str = "/tmp/src") -> list[str]:
    """The image recipe, as built with --build-arg SERVICE=<service>: locked dependencies first
    (from every member's pyproject.toml), then only common and this service, nothing dev-only; a
    final stage from a slim Python image with the virtual environment only, no uv or build tools,
    a non-root user, and uvicorn serving the service's factory on the container port."""
    factory = next(s.factory for s in SERVICES if s.name == service)
    _, stage_list = dockerfile_stages(text, {SERVICE_ARG: service})
    stages = {stage.name: stage for stage in stage_list}
    problems = []
    if not stage_list:
        return [f"{service}: no stages"]
    final = stage_list[-1]
    lineage = _lineage(final, stages)
    root_image = lineage[-1].base
    if not re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-\w+)?", root_image):
        problems.append(f"{service}: the final image is based on {root_image}, not a slim Python")
    for stage in lineage:
        for instruction, args_text in stage.instructions:
            if instruction == "RUN" and re.search(r"\b(uv|pip|apt-get|apk|gcc|make)\b", args_text):
                problems.append(f"{service}: the final image runs build tooling: {args_text}")
            if instruction == "COPY" and "--from=" in args_text:
                source = re.search(r"--from=(\S+)", args_text)
                if source and (
                    source.group(1) != "build" or args_text.split()[-2:] != ["/app/.venv"] * 2
                ):
                    problems.append(f"{service}: the final image copies {args_text}")
    users = [u for stage in lineage for u in stage.all("USER")]
    if not users or users[-1].split(":")[0] in {"0", "root"}:
        problems.append(f"{service}: the final image runs as root")
    problems += _cmd_problems(service, factory, lineage, reload=False)

    build = stages.get("build")
    if build is None:
        return [*problems, f"{service}: no build stage"]
    runs = [(i, a) for i, (n, a) in enumerate(build.instructions) if n == "RUN"]
    copies = [(i, a) for i, (n, a) in enumerate(build.instructions) if n == "COPY"]
    deps = [i for i, a in runs if "uv sync" in a and "--no-install-workspace" in a]
    project = [i for i, a in runs if "uv sync" in a and "--no-editable" in a]
    sources = [
        (i, a.split()[0])
        for i, a in copies
        if not a.split()[0].endswith(("pyproject.toml", "uv.lock")) and "--from" not in a
    ]
    for _, args_text in runs:
        if "uv sync" not in args_text:
            continue
        sync = " ".join(args_text[args_text.index("uv sync") :].split())
        if "--locked" not in sync or not re.search(rf"--package {service}(\s|$)", sync):
            problems.append(f"{service}: `{sync}` is not a locked sync of {service}")
        if "--no-dev" not in sync:
            problems.append(f"{service}: `{sync}` installs dev-only packages (no --no-dev)")
    if not deps:
        problems.append(f"{service}: no dependency layer (uv sync --no-install-workspace)")
    if not project:
        problems.append(f"{service}: the service is not installed non-editable")
    manifests, manifest_problems = _dependency_manifests(service, build, stages, copies)
    problems += manifest_problems
    # `uv sync --locked` needs every workspace member's pyproject.toml (and the root's).
    wanted = {"pyproject.toml", *(f"{m}/pyproject.toml" for m in workspace_members())}
    if wanted - manifests:
        problems.append(
            f"{service}: the dependency layer misses {sorted(wanted - manifests)} "
            "(uv sync --locked needs every workspace member's pyproject.toml)"
        )
    copied = {src.rstrip("/") for _, src in sources}
    if copied != {"common", service}:
        problems.append(
            f"{service}: the build copies {sorted(copied)}, not just common and {service}"
        )
    if deps and sources and min(i for i, _ in sources) < deps[0]:
        problems.append(f"{service}: sources are copied before the dependency layer")

    dev = stages.get("dev")
    if dev is None:
        problems.append(f"{service}: no dev stage for skaffold dev")
    else:
        dev_lineage = _lineage(dev, stages)
        if _env(dev_lineage).get("PYTHONPATH") != dev_sources:
            problems.append(f"{service}: the dev stage does not import from {dev_sources}")
        problems += _cmd_problems(service, factory, dev_lineage, reload=True)
    return problems


def _dependency_manifests(
    service: str, build: Stage, stages: dict[str, Stage], copies: list[tuple[int, str]]
) -> tuple[set[str], list[str]]:
    """The pyproject.toml files the build stage has before its dependency layer: copied one by
    one, or from a stage that picks them out of the context with `find -name pyproject.toml`."""
    manifests: set[str] = set()
    problems: list[str] = []
    for _, args_text in copies:
        parts = args_text.split()
        source = re.search(r"--from=(\S+)", args_text)
        if source is None:
            if parts[0].endswith("pyproject.toml"):
                manifests.add(parts[0])
            continue
        picker = stages.get(source.group(1))
        if picker is None or not any("find" in shlex.split(a) for a in picker.all("RUN")):
            continue
        found, picker_problems = _picked_manifests(service, picker)
        manifests |= found
        problems += picker_problems
    return manifests, problems


def _picked_manifests(service: str, picker: Stage) -> tuple[set[str], list[str]]:
    """What the picker stage's `find . -maxdepth N -name P` takes from the build context."""
    problems = []
    if picker.all("COPY") or picker.all("ADD"):
        problems.append(f"{service}: the {picker.name} stage copies files in, not just manifests")
    words = [w for a in picker.all("RUN") for w in shlex.split(a)]
    start = words.index("find")
    depth = int(words[words.index("-maxdepth") + 1]) if "-maxdepth" in words else 10**6
    names = [words[i + 1] for i, w in enumerate(words) if w == "-name" and i > start]
    for name in names:
        if name != "pyproject.toml":
            problems.append(
                f"{service}: the dependency layer takes every file named {name}, "
                "not only pyproject.toml"
            )
    candidates = ["pyproject.toml", *(f"{m}/pyproject.toml" for m in workspace_members())]
    found = {
        path
        for path in candidates
        if path.count("/") + 1 <= depth and any(fnmatch(Path(path).name, n) for n in names)
    }
    return found, problems


def workspace_members() -> list[str]:
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members: list[str] = root["tool"]["uv"]["workspace"]["members"]
    return members


def _served_app(command: list[str], env: dict[str, str]) -> str | None:
    # uvicorn's APP argument, or UVICORN_APP when the command leaves it out.
    for word in command[1:]:
        if re.fullmatch(r"[\w.]+:[\w.]+", word):
            return word
    return env.get("UVICORN_APP")


def _cmd_problems(service: str, factory: str, lineage: list[Stage], *, reload: bool) -> list[str]:
    stage = lineage[0]
    # The CMD in force: the last one of the nearest stage (or ancestor) that has one.
    commands = next((s.all("CMD") for s in lineage if s.all("CMD")), [])
    if not commands:
        return [f"{service}: the {stage.name} stage has no CMD"]
    command = _command(commands[-1])
    if command[:2] == ["sh", "-c"]:
        command = shlex.split(command[2].split("exec ", 1)[-1])
    problems = []
    if (
        command[:1] != ["uvicorn"]
        or _served_app(command, _env(lineage)) != factory
        or "--factory" not in command
    ):
        problems.append(f"{service}: the {stage.name} stage does not serve {factory} with uvicorn")
    if "--port" not in command or command[command.index("--port") + 1] != str(CONTAINER_PORT):
        problems.append(f"{service}: the {stage.name} stage does not listen on {CONTAINER_PORT}")
    if reload != ("--reload" in command):
        problems.append(
            f"{service}: the {stage.name} stage {'lacks' if reload else 'has'} --reload"
        )
    return problems


def hadolint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("hadolint"), "--no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


# ------------------------------------------------------------------------------------- skaffold


def skaffold_problems(config: Manifest, objects: list[Manifest]) -> list[str]:
    """skaffold.yaml: valid against the v4beta14 schema, an artifact per service image both for
    `skaffold run` and the dev profile (which syncs .py files into the dev stage's sources), and
    manifests through kustomize."""
    validator = jsonschema.Draft7Validator(load_json(SKAFFOLD_SCHEMA))
    problems = [f"skaffold.yaml: {_deepest(e)}" for e in validator.iter_errors(config)]
    if config.get("apiVersion") != "skaffold/v4beta14" or config.get("kind") != "Config":
        problems.append("skaffold.yaml is not apiVersion skaffold/v4beta14, kind Config")
    if problems:
        return problems
    for path in config.get("manifests", {}).get("kustomize", {}).get("paths", []):
        if not (REPO_ROOT / path / "kustomization.yaml").exists():
            problems.append(f"skaffold.yaml: kustomize path {path} has no kustomization.yaml")
    if not config.get("manifests", {}).get("kustomize", {}).get("paths"):
        problems.append("skaffold.yaml: manifests are not rendered with kustomize")
    wanted = {IMAGE_PREFIX + s.name: s.name for s in SERVICES}
    main = {a["image"]: a for a in config.get("build", {}).get("artifacts", [])}
    problems += _artifact_problems("build", main, wanted, target="runtime")
    dev_profiles = [
        p
        for p in config.get("profiles", [])
        if any(a.get("command") == "dev" for a in p.get("activation", []))
    ]
    if not dev_profiles:
        problems.append("skaffold.yaml: no profile is activated by `skaffold dev`")
    for profile in dev_profiles:
        dev = {a["image"]: a for a in profile.get("build", {}).get("artifacts", [])}
        problems += _artifact_problems(f"profile {profile['name']}", dev, wanted, target="dev")
        for image, service in wanted.items():
            rules = dev.get(image, {}).get("sync", {}).get("manual", [])
            synced = {(r["src"], r["dest"], r.get("strip")) for r in rules}
            for package in ("common", service):
                rule = (f"{package}/src/**/*.py", "/tmp/src", f"{package}/src/")
                if rule not in synced:
                    problems.append(f"skaffold dev does not sync {package}'s .py files for {image}")
    used = {
        c["image"]
        for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet")
        for c in pod_spec(workload)["containers"]
        if c["image"].startswith(IMAGE_PREFIX)
    }
    for image in sorted(used - set(main)):
        problems.append(f"skaffold.yaml: no artifact builds {image}, which a Deployment runs")
    for image in sorted(set(main) - used):
        problems.append(f"skaffold.yaml: {image} is built but no Deployment runs it")
    return problems


def _deepest(error: jsonschema.ValidationError) -> str:
    # The schema is a tree of anyOf alternatives: the one that matched deepest is the one meant.
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return f"{'.'.join(map(str, error.absolute_path))}: {error.message}"


def _artifact_problems(
    where: str, artifacts: dict[str, Manifest], wanted: dict[str, str], target: str
) -> list[str]:
    problems = []
    for image, service in wanted.items():
        artifact = artifacts.get(image)
        if artifact is None:
            problems.append(f"skaffold.yaml {where}: no artifact for {image}")
            continue
        docker = artifact.get("docker", {})
        if artifact.get("context", ".") != "." or docker.get("dockerfile", "Dockerfile") != str(
            DOCKERFILE.relative_to(REPO_ROOT)
        ):
            problems.append(f"skaffold.yaml {where}: {image} is not built from the one Dockerfile")
        built = docker.get("buildArgs", {}).get(SERVICE_ARG)
        if built != service:
            problems.append(
                f"skaffold.yaml {where}: {image} is built with {SERVICE_ARG}={built}, not {service}"
            )
        if docker.get("target") != target:
            problems.append(f"skaffold.yaml {where}: {image} builds stage {docker.get('target')}")
    return problems
