"""`make k8s-secrets`: the cluster's Secrets (JWT keys, Stripe keys, TLS certificate, the NATS and
MongoDB users' credentials) via kubectl.

Secrets are never committed: this builds them from the same development CA, JWT key pair and
passwords that `make up` keeps under TICKETING_DATA_DIR (passwords are made once and reused: a
MongoDB takes its users only when its volume is first initialised), plus the Stripe keys from
the environment, and applies them with `kubectl apply` to the current kubectl context.
"""

import argparse
import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from common.bus_permissions import every_user, password_variable
from common.catalog import load_contracts
from pydantic_settings import BaseSettings, SettingsConfigDict

from devserver.certs import ensure_ca, server_certificate, trust_instructions
from devserver.keys import ensure_jwt_keys, ensure_passwords
from devserver.routing import SERVICES
from devserver.system import repo_root

NAMESPACE_MANIFEST = repo_root() / "infra" / "k8s" / "namespace.yaml"

NAMESPACE = "gittix"
HOST = "ticketing.localhost"
# The names the manifests in infra/k8s refer to (tests/infra checks they agree).
JWT_PUBLIC_SECRET, JWT_PUBLIC_KEY = "jwt-public-key", "public.pem"
JWT_PRIVATE_SECRET, JWT_PRIVATE_KEY = "jwt-private-key", "private.pem"
STRIPE_SECRET, STRIPE_SECRET_KEY, STRIPE_PUBLISHABLE_KEY = "stripe", "secret-key", "publishable-key"
STRIPE_WEBHOOK_SECRET = "webhook-secret"
TLS_SECRET = "ticketing-tls"
TLS_CERT_NAME = "ingress"
# The NATS server's: NATS_PASSWORD_<USER> for every user of infra/k8s/nats-users.conf.
NATS_USERS_SECRET = "nats-users"
NATS_HOST = "nats:4222"
# Per data service: its own URLs (<service>-credentials) and its MongoDB's users
# (<service>-mongo-credentials, read by the mongo image and infra/k8s/mongo-init.js).
CREDENTIALS_SECRET, NATS_URL_KEY, MONGO_URL_KEY = "{service}-credentials", "nats-url", "mongo-url"
MONGO_CREDENTIALS_SECRET = "{service}-mongo-credentials"
MONGO_ROOT_USER = "root"

Manifest = dict[str, Any]


class K8sSecretsSettings(BaseSettings):
    """Where the dev CA and keys live, and the Stripe keys to hand to the cluster."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Unset: `make up`'s own data dir, so the cluster gets the CA and keys it already uses.
    ticketing_data_dir: Path = repo_root() / ".data"
    stripe_secret_key: str | None = None
    stripe_publishable_key: str | None = None
    # The signing secret of the webhook endpoint made in Stripe's dashboard for
    # https://<host>/api/payments/webhooks; unset, payments refuses every webhook (400).
    stripe_webhook_secret: str | None = None


class SecretsError(Exception):
    """Something the person running `make k8s-secrets` has to fix; the message says what."""


def _secret(name: str, data: dict[str, str], secret_type: str = "Opaque") -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "gittix",
                "app.kubernetes.io/managed-by": "make-k8s-secrets",
            },
        },
        "type": secret_type,
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def _stripe_data(settings: K8sSecretsSettings) -> dict[str, str]:
    secret_key = (settings.stripe_secret_key or "").strip()
    if not secret_key:
        raise SecretsError(
            "STRIPE_SECRET_KEY is not set. Payments on a cluster talk to Stripe itself: run\n"
            "  STRIPE_SECRET_KEY=sk_test_... make k8s-secrets\n"
            "with a test-mode key from the Stripe dashboard (a live sk_live_ key in production)."
        )
    if not secret_key.startswith(("sk_", "rk_")):
        raise SecretsError("STRIPE_SECRET_KEY must be a Stripe secret key (sk_... or rk_...)")
    data = {STRIPE_SECRET_KEY: secret_key}
    publishable = (settings.stripe_publishable_key or "").strip()
    if publishable:
        if not publishable.startswith("pk_"):
            raise SecretsError("STRIPE_PUBLISHABLE_KEY must be a Stripe publishable key (pk_...)")
        data[STRIPE_PUBLISHABLE_KEY] = publishable
    webhook = (settings.stripe_webhook_secret or "").strip()
    if webhook:
        if not webhook.startswith("whsec_"):
            raise SecretsError("STRIPE_WEBHOOK_SECRET must be a webhook signing secret (whsec_...)")
        data[STRIPE_WEBHOOK_SECRET] = webhook
    return data


def _user_secrets(data_dir: Path) -> list[Manifest]:
    """The NATS server's passwords, and each data service's credentials: a NATS user of its own
    (the rights of common.bus_permissions) and a MongoDB user with readWrite on its own
    database only (the root user stays with its MongoDB)."""
    users = [user.user for user in every_user(load_contracts())]
    services = [service.name for service in SERVICES if service.owns_data]
    passwords = ensure_passwords(
        data_dir,
        [f"nats/{user}" for user in users]
        + [f"mongo/{service}" for service in services]
        + [f"mongo-root/{service}" for service in services],
    )
    secrets = [
        _secret(
            NATS_USERS_SECRET,
            {password_variable(user): passwords[f"nats/{user}"] for user in users},
        )
    ]
    for service in services:
        mongo_password = passwords[f"mongo/{service}"]
        nats_password = passwords[f"nats/{service}"]
        secrets += [
            _secret(
                CREDENTIALS_SECRET.format(service=service),
                {
                    NATS_URL_KEY: f"nats://{service}:{nats_password}@{NATS_HOST}",
                    MONGO_URL_KEY: (
                        f"mongodb://{service}:{mongo_password}@{service}-mongo:27017/{service}"
                    ),
                },
            ),
            _secret(
                MONGO_CREDENTIALS_SECRET.format(service=service),
                {
                    "MONGO_INITDB_ROOT_USERNAME": MONGO_ROOT_USER,
                    "MONGO_INITDB_ROOT_PASSWORD": passwords[f"mongo-root/{service}"],
                    "GITTIX_MONGO_USERNAME": service,
                    "GITTIX_MONGO_PASSWORD": mongo_password,
                    "GITTIX_MONGO_DATABASE": service,
                },
            ),
        ]
    return secrets


def build_secrets(settings: K8sSecretsSettings) -> list[Manifest]:
    """Every Secret the manifests need, built locally (the CA, keys and passwords are created if
    missing)."""
    stripe = _stripe_data(settings)
    data_dir = settings.ticketing_data_dir
    private_pem, public_pem = ensure_jwt_keys(data_dir)
    cert_path, key_path = server_certificate(data_dir, [HOST], TLS_CERT_NAME)
    return [
        _secret(JWT_PUBLIC_SECRET, {JWT_PUBLIC_KEY: public_pem}),
        _secret(JWT_PRIVATE_SECRET, {JWT_PRIVATE_KEY: private_pem}),
        _secret(STRIPE_SECRET, stripe),
        _secret(
            TLS_SECRET,
            {"tls.crt": cert_path.read_text(), "tls.key": key_path.read_text()},
            secret_type="kubernetes.io/tls",
        ),
        *_user_secrets(data_dir),
    ]


def render(secrets: list[Manifest]) -> str:
    """The Secrets as one kubectl List in JSON (which is also YAML), for `kubectl apply -f -`."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": secrets}, indent=2) + "\n"


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise SecretsError("kubectl not found: run `make install` (it comes with the dev tools)")
    return found


def apply(secrets: list[Manifest]) -> None:
    """Create the namespace if needed, then create or update the Secrets in the current context."""
    kubectl = _kubectl()
    # The same Namespace object skaffold applies, so the two never fight over its labels.
    subprocess.run([kubectl, "apply", "-f", str(NAMESPACE_MANIFEST)], check=True)
    subprocess.run([kubectl, "apply", "-f", "-"], input=render(secrets).encode(), check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make k8s-secrets",
        description="Create GitTix's Kubernetes Secrets in the current kubectl context.",
    )
    parser.add_argument(
        "--print",
        dest="print_only",
        action="store_true",
        help="write the Secret manifests to stdout instead of applying them",
    )
    args = parser.parse_args(argv)
    settings = K8sSecretsSettings()
    try:
        secrets = build_secrets(settings)
        if args.print_only:
            sys.stdout.write(render(secrets))
            return 0
        apply(secrets)
    except SecretsError as error:
        print(f"make k8s-secrets: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"make k8s-secrets: kubectl failed ({error.returncode})", file=sys.stderr)
        return 1
    ca_cert, _ = ensure_ca(settings.ticketing_data_dir)
    print(f"Secrets applied in namespace {NAMESPACE} for https://{HOST}.")
    print(trust_instructions(ca_cert.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
