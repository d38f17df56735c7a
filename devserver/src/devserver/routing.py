"""The one routing table: `make up`'s HTTPS entry point and the Kubernetes ingress route by it."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """Requests whose path starts with `prefix` go to `service`."""

    prefix: str
    service: str


@dataclass(frozen=True)
class ServiceProcess:
    """How one service runs: its ASGI factory and its port under `make up`."""

    name: str
    factory: str
    dev_port: int


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
    ServiceProcess("client", "client.app:create_app", 4000),
)


# Sorted once: route_for runs on every request through the entry point.
_LONGEST_FIRST: tuple[Route, ...] = tuple(sorted(ROUTES, key=lambda r: len(r.prefix), reverse=True))


def route_for(path: str) -> Route:
    """The route a request path takes: the longest matching prefix on a path-segment boundary."""
    for route in _LONGEST_FIRST:
        prefix = route.prefix.rstrip("/")
        if path == prefix or path.startswith(prefix + "/") or route.prefix == "/":
            return route
    raise LookupError(path)  # unreachable while "/" is in ROUTES
