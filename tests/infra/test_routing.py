"""The Ingress, the Gateway API variant and `make up` route the same paths to the same services."""

import copy

from devserver.routing import ROUTES, Route, route_for
from infra_checks import HOST, Manifest, find, httproute_problems, ingress_problems


def test_ingress_routes_exactly_like_make_up(base_objects: list[Manifest]) -> None:
    assert ingress_problems(base_objects) == []


def test_gateway_variant_routes_exactly_like_make_up(gateway_objects: list[Manifest]) -> None:
    assert httproute_problems(gateway_objects) == []


def test_both_entry_points_use_the_same_host_certificate(
    base_objects: list[Manifest], gateway_objects: list[Manifest]
) -> None:
    ingress = find(base_objects, "Ingress", "ticketing")
    gateway = find(gateway_objects, "Gateway", "ticketing")
    assert ingress is not None and gateway is not None
    ingress_tls = {(h, t["secretName"]) for t in ingress["spec"]["tls"] for h in t["hosts"]}
    gateway_tls = {
        (listener["hostname"], ref["name"])
        for listener in gateway["spec"]["listeners"]
        if listener["protocol"] == "HTTPS"
        for ref in listener["tls"]["certificateRefs"]
    }
    assert ingress_tls == gateway_tls == {(HOST, "ticketing-tls")}


def test_prefix_matching_agrees_with_make_up() -> None:
    # Ingress Prefix and HTTPRoute PathPrefix match whole path segments, longest prefix first:
    # the same rule as devserver.routing.route_for.
    for path, service in [
        ("/api/users/currentuser", "auth"),
        ("/api/users", "auth"),
        ("/api/usersx", "client"),
        ("/api/orders/123", "orders"),
        ("/api/payments", "payments"),
        ("/tickets/new", "client"),
    ]:
        assert route_for(path).service == service, path


def test_a_route_missing_from_the_ingress_is_reported(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    ingress = find(broken, "Ingress", "ticketing")
    assert ingress is not None
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    paths[:] = [p for p in paths if p["path"] != "/api/payments"]
    assert ingress_problems(broken) == [
        "Ingress does not route /api/payments (make up sends it to payments)"
    ]


def test_a_route_to_the_wrong_service_or_port_is_reported(base_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(base_objects)
    ingress = find(broken, "Ingress", "ticketing")
    assert ingress is not None
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    orders = next(p for p in paths if p["path"] == "/api/orders")
    orders["backend"]["service"]["name"] = "tickets"
    tickets = next(p for p in paths if p["path"] == "/api/tickets")
    tickets["backend"]["service"]["port"] = {"name": "https"}
    problems = ingress_problems(broken)
    assert "Ingress sends /api/orders to tickets, make up to orders" in problems
    assert "Ingress path /api/tickets goes to no port of tickets" in problems


def test_a_route_added_to_make_up_only_is_reported(
    base_objects: list[Manifest], gateway_objects: list[Manifest]
) -> None:
    routes = (*ROUTES, Route("/api/refunds", "payments"))
    assert ingress_problems(base_objects, routes) == [
        "Ingress does not route /api/refunds (make up sends it to payments)"
    ]
    assert httproute_problems(gateway_objects, routes) == [
        "HTTPRoute does not route /api/refunds (make up sends it to payments)"
    ]


def test_a_broken_httproute_is_reported(gateway_objects: list[Manifest]) -> None:
    broken = copy.deepcopy(gateway_objects)
    route = find(broken, "HTTPRoute", "ticketing")
    assert route is not None
    rules = route["spec"]["rules"]
    rules[:] = [r for r in rules if r["matches"][0]["path"]["value"] != "/api/users"]
    rules[0]["backendRefs"][0]["name"] = "client"
    problems = httproute_problems(broken)
    assert "HTTPRoute does not route /api/users (make up sends it to auth)" in problems
    assert any(p.startswith("HTTPRoute sends /api/") and "to client" in p for p in problems)


def test_the_gateway_variant_drops_the_ingress_and_keeps_tls(
    gateway_objects: list[Manifest], base_objects: list[Manifest]
) -> None:
    ingress = find(base_objects, "Ingress", "ticketing")
    assert ingress is not None
    assert find(gateway_objects, "Ingress", "ticketing") is None
    broken = copy.deepcopy(gateway_objects)
    broken.append(copy.deepcopy(ingress))
    gateway = find(broken, "Gateway", "ticketing")
    assert gateway is not None
    gateway["spec"]["listeners"] = [
        item for item in gateway["spec"]["listeners"] if item["protocol"] != "HTTPS"
    ]
    problems = httproute_problems(broken)
    assert "the Gateway variant still has an Ingress" in problems
    assert f"the Gateway has no HTTPS listener for {HOST} with ticketing-tls" in problems
