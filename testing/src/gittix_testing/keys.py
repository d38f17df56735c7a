"""Throwaway Ed25519 session-signing key pairs, for the suites, benchmarks and generated docs."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def signing_key_pair() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM), the form JWT_PRIVATE_KEY and
    JWT_PUBLIC_KEY take."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public
