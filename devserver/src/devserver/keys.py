"""The development JWT key pair (Ed25519): generated once under the data dir, reused after."""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PRIVATE_KEY_FILE = "jwt-private.pem"
PUBLIC_KEY_FILE = "jwt-public.pem"


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
