"""Who may do what on NATS: each service's user and rights, derived from its ServiceContract.

A service may publish only the events its contract says it publishes (and the dead letters of
its own consumers), and may read only through its own durable consumers, whose filters are the
subjects its listeners handle. Replies come back on an inbox prefix of its own
(`_INBOX_<service>`), so no service can read another's deliveries or acknowledgements.
The table in docs/security.md and both NATS configurations (`make up`'s and the cluster's
infra/k8s/nats-users.conf, written by `make docs`) come from `authorization_config`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from common.contract import ServiceContract
from common.deadletter import DEAD_LETTER_STREAM, dead_letter_subject
from common.messaging import STREAM_NAME, inbox_prefix

# The streams every service makes sure exist at start-up (common.messaging.ensure_stream).
EVENT_STREAM = STREAM_NAME
STREAMS = (EVENT_STREAM, DEAD_LETTER_STREAM)
# The operator's user (the `dlq` command, `make verify`, the e2e tests' bus): every right. Its
# password is in no service's environment.
ADMIN_USER = "admin"
JS_API = "$JS.API"


def password_variable(user: str) -> str:
    """The environment variable the NATS server reads `user`'s password from."""
    return f"NATS_PASSWORD_{user.upper()}"


@dataclass(frozen=True)
class BusPermissions:
    """One NATS user: the subjects it may publish to and subscribe to (nothing else)."""

    user: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


def service_permissions(contract: ServiceContract) -> BusPermissions:
    """The least a service needs: publish its own events (the stream answers each with an ack
    to its inbox), create/update the two streams at start-up, run its own durable pull
    consumers (create with its filter, info, fetch, ack/nak/term), dead-letter what they give
    up on, and read replies on its own inbox."""
    publish = [event.subject for event in contract.publishes]
    for stream in STREAMS:
        publish += [f"{JS_API}.STREAM.{verb}.{stream}" for verb in ("INFO", "CREATE", "UPDATE")]
    for listener in contract.listeners:
        durable = listener.durable_name(contract.name)
        subject = listener.event.subject
        publish += [
            f"{JS_API}.CONSUMER.CREATE.{EVENT_STREAM}.{durable}.{subject}",
            f"{JS_API}.CONSUMER.INFO.{EVENT_STREAM}.{durable}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{EVENT_STREAM}.{durable}",
            f"$JS.ACK.{EVENT_STREAM}.{durable}.>",
            dead_letter_subject(durable),
        ]
    return BusPermissions(
        user=contract.name,
        publish=tuple(publish),
        subscribe=(f"{inbox_prefix(contract.name)}.>",),
    )


def admin_permissions() -> BusPermissions:
    return BusPermissions(user=ADMIN_USER, publish=(">",), subscribe=(">",))


def every_user(contracts: Iterable[ServiceContract]) -> list[BusPermissions]:
    """The admin, then one user per service, by name."""
    services = sorted((service_permissions(c) for c in contracts), key=lambda p: p.user)
    return [admin_permissions(), *services]


def _quoted(subjects: Iterable[str]) -> str:
    return ", ".join(f'"{subject}"' for subject in subjects)


def authorization_config(
    users: Iterable[BusPermissions],
    password: Callable[[str], str] = lambda user: "$" + password_variable(user),
) -> str:
    """The `authorization` block of a nats-server configuration. Passwords default to
    references to environment variables (`$NATS_PASSWORD_<USER>`), which the server resolves
    when it starts; nothing secret is written into the file."""
    lines = [
        "# Generated from every service's ServiceContract (common.bus_permissions) by",
        "# `make docs`; do not edit. Anyone without a user here cannot connect.",
        "authorization {",
        "  users = [",
    ]
    for user in users:
        lines += [
            "    {",
            f'      user: "{user.user}"',
            f"      password: {password(user.user)}",
            "      permissions: {",
            f"        publish: {{allow: [{_quoted(user.publish)}]}}",
            f"        subscribe: {{allow: [{_quoted(user.subscribe)}]}}",
            "      }",
            "    }",
        ]
    lines += ["  ]", "}", ""]
    return "\n".join(lines)
