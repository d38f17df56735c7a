"""The observability component (infra/components/observability, rendered by
infra/overlays/observability): strict schemas, safe workloads, every data service exporting its
spans to the collector and scraped by annotation on its own port, the connections that needs
and no other, and alert rules that name only metrics the services export. Each check is shown
failing on a broken copy."""

import copy
import json
import re
from typing import Any

import pytest
import yaml
from infra_checks import (
    DATA_SERVICES,
    NAMESPACE,
    REPO_ROOT,
    Manifest,
    Peer,
    find,
    kustomize,
    main_container,
    may_connect,
    of_kind,
    schema_problems,
    security_problems,
    workload_peers,
)
from prometheus_client import REGISTRY

from common import metrics  # noqa: F401  (registers every GitTix metric)

OVERLAY = REPO_ROOT / "infra" / "overlays" / "observability"
COLLECTOR = "http://otel-collector:4318"
PROMETHEUS = Peer("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, "10.2.0.1")
# What must page someone (issue 14), by alert name.
ALERTS = {
    "GittixDeadLetters",
    "GittixConsumerLagGrowing",
    "GittixOutboxStuck",
    "GittixExpiryLate",
    "GittixNotReady",
}


@pytest.fixture(scope="module")
def objects() -> list[Manifest]:
    return kustomize(OVERLAY)


def rules_of(objects: list[Manifest]) -> dict[str, Any]:
    config_map = next(
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("gittix-alert")
    )
    return {
        rule["alert"]: rule
        for group in yaml.safe_load(config_map["data"]["gittix-rules.yaml"])["groups"]
        for rule in group["rules"]
    }


def exported_metric_names() -> set[str]:
    """The series names Prometheus sees (a counter only as <name>_total, a histogram only as its
    _bucket, _sum and _count), whether or not a sample exists yet."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def wiring_problems(objects: list[Manifest]) -> list[str]:
    """Each data service exports spans to a collector Service that exists and is scraped, by
    annotation, on the port its container serves; the web client (no /metrics) is not."""
    problems = []
    collector = find(objects, "Service", "otel-collector")
    if collector is None or 4318 not in {p["port"] for p in collector["spec"]["ports"]}:
        problems.append("no otel-collector Service on 4318")
    for name in DATA_SERVICES:
        deployment = find(objects, "Deployment", name)
        assert deployment is not None
        container = main_container(deployment)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") != COLLECTOR:
            problems.append(f"{name}: spans not sent to {COLLECTOR}")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        served = {str(p["containerPort"]) for p in container.get("ports", [])}
        if annotations.get("prometheus.io/scrape") != "true":
            problems.append(f"{name}: not scraped")
        if annotations.get("prometheus.io/port") not in served:
            problems.append(f"{name}: scraped on a port it does not serve")
        if annotations.get("prometheus.io/path") != "/metrics":
            problems.append(f"{name}: scraped on the wrong path")
    client = find(objects, "Deployment", "client")
    if client is not None and client["spec"]["template"]["metadata"].get("annotations"):
        problems.append("client: scraped, but it serves no /metrics")
    return problems


def connection_problems(objects: list[Manifest]) -> list[str]:
    """Spans: data services -> collector -> Jaeger; scrapes: Prometheus -> data services; and
    nothing else new (the client reaches no collector, Prometheus nothing but /metrics)."""
    peers = {peer.name: peer for peer in workload_peers(objects)}
    wanted = [(name, "otel-collector", 4318, True) for name in DATA_SERVICES]
    wanted += [("otel-collector", "jaeger", 4317, True), ("client", "otel-collector", 4318, False)]
    wanted += [("jaeger", name, 8000, False) for name in DATA_SERVICES]
    problems = []
    for source, destination, port, allowed in wanted:
        if may_connect(objects, peers[source], peers[destination], port) != allowed:
            problems.append(f"{source} -> {destination}:{port} should be {allowed}")
    for name in DATA_SERVICES:
        if not may_connect(objects, PROMETHEUS, peers[name], 8000):
            problems.append(f"prometheus cannot scrape {name}")
        mongo = peers.get(f"{name}-mongo")
        if mongo is not None and may_connect(objects, PROMETHEUS, mongo, 27017):
            problems.append(f"prometheus reaches {name}'s MongoDB")
    return problems


def rule_problems(objects: list[Manifest]) -> list[str]:
    """Every alert that must exist does, with a severity and a summary, and its expression names
    only metrics the services export (a renamed metric would silence it for good)."""
    rules = rules_of(objects)
    problems = [f"missing alert {name}" for name in sorted(ALERTS - set(rules))]
    known = exported_metric_names()
    for name, rule in rules.items():
        if rule.get("labels", {}).get("severity") != "page":
            problems.append(f"{name}: no severity page")
        if not rule.get("annotations", {}).get("summary"):
            problems.append(f"{name}: no summary")
        for metric in re.findall(r"\bgittix_[a-z_]+", rule["expr"]):
            if metric not in known:
                problems.append(f"{name}: {metric} is not a metric any service exports")
    return problems


def test_the_overlay_renders_with_strict_schemas_and_safe_workloads(
    objects: list[Manifest],
) -> None:
    assert schema_problems(objects) == []
    assert security_problems(objects) == []
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {
        NAMESPACE
    }


def test_every_data_service_exports_spans_and_is_scraped_on_its_own_port(
    objects: list[Manifest],
) -> None:
    assert wiring_problems(objects) == []


def test_tracing_stays_off_in_the_base(base_objects: list[Manifest]) -> None:
    for name in DATA_SERVICES:
        deployment = find(base_objects, "Deployment", name)
        assert deployment is not None
        names = {e["name"] for e in main_container(deployment).get("env", [])}
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in names


def test_the_network_admits_spans_and_scrapes_and_nothing_else(objects: list[Manifest]) -> None:
    assert connection_problems(objects) == []


def test_alert_rules_page_on_what_matters_with_metrics_that_exist(
    objects: list[Manifest],
) -> None:
    assert rule_problems(objects) == []
    rules = rules_of(objects)
    assert rules["GittixOutboxStuck"]["expr"].strip().endswith("> 60")
    assert rules["GittixConsumerLagGrowing"]["for"] == "5m"
    assert "histogram_quantile(0.99" in rules["GittixExpiryLate"]["expr"]
    assert rules["GittixExpiryLate"]["expr"].strip().endswith("> 1")


def _broken(objects: list[Manifest], kind: str, name: str) -> tuple[list[Manifest], Manifest]:
    copied = copy.deepcopy(objects)
    target = find(copied, kind, name)
    assert target is not None
    return copied, target


def test_each_check_fails_on_a_broken_copy(objects: list[Manifest]) -> None:
    unscraped, orders = _broken(objects, "Deployment", "orders")
    orders["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9090"
    assert wiring_problems(unscraped) == ["orders: scraped on a port it does not serve"]

    untraced, payments = _broken(objects, "Deployment", "payments")
    main_container(payments)["env"] = [
        e for e in main_container(payments)["env"] if e["name"] != "OTEL_EXPORTER_OTLP_ENDPOINT"
    ]
    assert wiring_problems(untraced) == [f"payments: spans not sent to {COLLECTOR}"]

    cut_off, policy = _broken(objects, "NetworkPolicy", "otel-collector")
    policy["spec"]["egress"] = []
    assert connection_problems(cut_off) == ["otel-collector -> jaeger:4317 should be True"]

    renamed = copy.deepcopy(objects)
    config_map = next(c for c in of_kind(renamed, "ConfigMap") if "gittix-rules.yaml" in c["data"])
    config_map["data"]["gittix-rules.yaml"] = config_map["data"]["gittix-rules.yaml"].replace(
        "gittix_dead_letters", "gittix_dead_letter_count"
    )
    assert rule_problems(renamed) == [
        "GittixDeadLetters: gittix_dead_letter_count is not a metric any service exports"
    ]


DASHBOARD = REPO_ROOT / "infra" / "components" / "observability" / "grafana-dashboard.json"


def dashboard_problems(dashboard: dict[str, Any]) -> list[str]:
    """Every panel queries only exported metrics, and every metric GitTix exports is on a panel."""
    known = exported_metric_names()
    shown = set()
    problems = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"\bgittix_[a-z_]+", target["expr"]):
                shown.add(re.sub(r"_(bucket|sum|count)$", "", metric))
                if metric not in known:
                    problems.append(f"{panel['title']}: {metric} is not exported")
    families = {f.name for f in REGISTRY.collect() if f.name.startswith("gittix_")}
    counters = {f"{name}_total" for name in families}
    for name in sorted(families):
        if name not in shown and f"{name}_total" not in shown & counters:
            problems.append(f"{name} is on no panel")
    return problems


def test_the_grafana_dashboard_shows_every_metric_and_only_real_ones() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard_problems(dashboard) == []
    broken = copy.deepcopy(dashboard)
    broken["panels"] = [p for p in broken["panels"] if p["title"] != "Dead letters"]
    broken["panels"][0]["targets"][0]["expr"] = "rate(gittix_http_requests[5m])"
    assert dashboard_problems(broken) == [
        "HTTP requests by route and status: gittix_http_requests is not exported",
        "gittix_dead_letters is on no panel",
    ]
