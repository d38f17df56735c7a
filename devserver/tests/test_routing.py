"""The routing table: which service a request path reaches (`make up` and the ingress alike)."""

import pytest
from devserver.routing import ROUTES, SERVICES, route_for


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/users", "auth"),
        ("/api/users/currentuser", "auth"),
        ("/api/users/signup", "auth"),
        ("/api/tickets", "tickets"),
        ("/api/tickets/65a1b2c3d4e5f6a7b8c9d0e1", "tickets"),
        ("/api/orders/65a1b2c3d4e5f6a7b8c9d0e1", "orders"),
        ("/api/payments", "payments"),
        ("/", "client"),
        ("/tickets/new", "client"),
        ("/api", "client"),
        ("/api/unknown", "client"),
    ],
)
def test_path_reaches_its_service(path: str, service: str) -> None:
    assert route_for(path).service == service


@pytest.mark.parametrize("path", ["/api/usersX", "/api/users-admin", "/api/ticketsfoo/1"])
def test_prefix_matches_only_on_a_segment_boundary(path: str) -> None:
    assert route_for(path).service == "client"


def test_longest_prefix_wins_whatever_the_table_order() -> None:
    # "/" matches everything; it must never shadow a longer prefix listed before or after it.
    assert ROUTES[-1].prefix == "/"
    assert route_for("/api/payments/x").prefix == "/api/payments"


def test_every_routed_service_has_a_process_and_ports_are_distinct() -> None:
    names = {service.name for service in SERVICES}
    assert {route.service for route in ROUTES} <= names
    ports = [service.dev_port for service in SERVICES]
    assert len(ports) == len(set(ports))
