"""The one list of services and the one routing table.

SERVICES is where a service is registered: `make up`, the e2e harness, the generated docs
(devserver.docs), the Kubernetes and image checks (tests/infra) read it, and
tests/test_service_registry.py fails when a service in it is missing from a place that cannot
read Python (the workspace, the Makefile, skaffold.yaml, infra/k8s, the CI workflows) or the
other way round. ROUTES is what `make up`'s HTTPS entry point and the Kubernetes ingress route by.
"""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """Requests whose path starts with `prefix` go to `service`."""

    prefix: str
    service: str


@dataclass(frozen=True)
class ServiceProcess:
    """One service: its workspace member and image name, its ASGI factory, its port under
    `make up`, and whether it owns data (its own MongoDB, the event bus, session checks)."""

    name: str
    factory: str
    dev_port: int
    owns_data: bool = True


# Longest prefix wins; "/" is the catch-all for the web client.
ROUTES: tuple[Route, ...] = (
    Route("/api/users", "auth"),
    Route("/api/tickets", "tickets"),
    Route("/api/orders", "orders"),
    Route("/api/payments", "payments"),
    Route("/", "client"),
)

# Every service listens on CONTAINER_PORT in Kubernetes and on dev_port under `make up`.
CONTAINER_PORT = 8000

SERVICES: tuple[ServiceProcess, ...] = (
    ServiceProcess("auth", "auth.app:create_app", 4001),
    ServiceProcess("tickets", "tickets.app:create_app", 4002),
    ServiceProcess("orders", "orders.app:create_app", 4003),
    ServiceProcess("expiration", "expiration.app:create_app", 4004),
    ServiceProcess("payments", "payments.app:create_app", 4005),
    ServiceProcess("client", "client.app:create_app", 4000, owns_data=False),
)


# Sorted once: route_for runs on every request through the entry point.
_LONGEST_FIRST: tuple[Route, ...] = tuple(sorted(ROUTES, key=lambda r: len(r.prefix), reverse=True))


def route_for(path: str, routes: Sequence[Route] | None = None) -> Route:
    """The route a request path takes through `routes` (default ROUTES): the longest matching
    prefix on a path-segment boundary."""
    ordered = (
        _LONGEST_FIRST
        if routes is None
        else sorted(routes, key=lambda r: len(r.prefix), reverse=True)
    )
    for route in ordered:
        prefix = route.prefix.rstrip("/")
        if path == prefix or path.startswith(prefix + "/") or route.prefix == "/":
            return route
    raise LookupError(path)  # unreachable while "/" is in the routes
