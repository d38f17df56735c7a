"""The development secrets, generated once under the data dir and reused after: the JWT key pair
(Ed25519) and the passwords of the NATS users and the MongoDB users."""

import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_KEY_FILE = "jwt-private.pem"
PUBLIC_KEY_FILE = "jwt-public.pem"
PASSWORDS_FILE = "passwords.json"


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only, atomically (no half-written key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


def ensure_jwt_keys(data_dir: Path) -> tuple[str, str]:
    """The dev session-signing key pair as (private PEM, public PEM), created on first use."""
    keys_dir = Path(data_dir) / "keys"
    private_path = keys_dir / PRIVATE_KEY_FILE
    public_path = keys_dir / PUBLIC_KEY_FILE
    if private_path.exists():
        private_pem = private_path.read_bytes()
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{private_path} is not an Ed25519 key")
    else:
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(private_path, private_pem)
    # The public half is always derived from the private key so the two can never disagree.
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        public_path.write_bytes(public_pem)
    return private_pem.decode(), public_pem.decode()


# A letter, then 48 hex digits (192 random bits). nats-server reads a password given through
# an environment variable as a configuration value: one starting with a digit or "-" is taken
# for a number and refused, so the first character is always a letter. Nothing in it needs
# escaping in NATS_URL or MONGO_URL.
PASSWORD_FORMAT = re.compile(r"^p[0-9a-f]{48}$")


def new_password() -> str:
    return "p" + secrets.token_hex(24)


def ensure_passwords(data_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """A password per name (e.g. "nats/tickets", "mongo-root/tickets"), created on first use and
    kept in keys/passwords.json (owner-only): a cluster's MongoDB takes its passwords only when
    its volume is first initialised, so they must not change between `make k8s-secrets` runs.
    One of another shape (made before PASSWORD_FORMAT) is replaced: NATS may refuse it."""
    path = Path(data_dir) / "keys" / PASSWORDS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = list(names)
    missing = [name for name in wanted if not PASSWORD_FORMAT.match(stored.get(name, ""))]
    if missing:
        stored |= {name: new_password() for name in missing}
        write_private(path, (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode())
    return {name: stored[name] for name in wanted}


def stored_password(data_dir: Path, name: str) -> str | None:
    """A password ensure_passwords made earlier, without creating one."""
    path = Path(data_dir) / "keys" / PASSWORDS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    return stored.get(name)
