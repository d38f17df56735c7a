"""The development certificate authority and the server certificates it signs for `make up`/ingress.

The CA is created once under data_dir/certs and reused; a developer trusts it once and every
certificate signed with it is accepted without a browser warning. It is name-constrained to
localhost names and loopback addresses, so trusting it cannot let its key vouch for any real site.
"""

import datetime
import getpass
import ipaddress
import socket
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devserver.keys import write_private

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CA_VALIDITY = datetime.timedelta(days=3650)
# Browsers reject TLS server certificates valid for more than 398 days.
SERVER_VALIDITY = datetime.timedelta(days=390)
# Re-issue a server certificate this long before it expires.
RENEW_BEFORE = datetime.timedelta(days=30)
# What the CA may vouch for: "localhost" also covers every *.localhost name.
PERMITTED_DNS = "localhost"
PERMITTED_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

HostName = x509.DNSName | x509.IPAddress


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _certs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "certs"


def _general_name(host: str) -> HostName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.lower())


def _permitted(name: HostName) -> bool:
    if isinstance(name, x509.IPAddress):
        return any(name.value in network for network in PERMITTED_NETWORKS)
    return name.value == PERMITTED_DNS or name.value.endswith("." + PERMITTED_DNS)


def _write(
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    cert_path: Path,
    key_path: Path,
) -> None:
    """The key (readable by its owner only) and the certificate, both PEM."""
    write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _create_ca(cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    try:
        owner = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in some containers; the label is cosmetic
        owner = socket.gethostname()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GitTix development CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"GitTix development CA {owner}"),
        ]
    )
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.NameConstraints(
                permitted_subtrees=[
                    x509.DNSName(PERMITTED_DNS),
                    *(x509.IPAddress(network) for network in PERMITTED_NETWORKS),
                ],
                excluded_subtrees=None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(certificate, key, cert_path, key_path)


def ensure_ca(data_dir: Path) -> tuple[Path, Path]:
    """The development CA as (certificate path, key path), created on first use."""
    certs_dir = _certs_dir(data_dir)
    cert_path, key_path = certs_dir / CA_CERT_FILE, certs_dir / CA_KEY_FILE
    if not (cert_path.exists() and key_path.exists()):
        certs_dir.mkdir(parents=True, exist_ok=True)
        _create_ca(cert_path, key_path)
    return cert_path, key_path


def _load_ca(data_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ensure_ca(data_dir)
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path} is not an EC key")
    return certificate, key


def _still_good(
    cert_path: Path, key_path: Path, ca: x509.Certificate, wanted: list[HostName]
) -> bool:
    """An existing certificate is reused if this CA signed it, it covers the hosts and is fresh."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        certificate.verify_directly_issued_by(ca)
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if certificate.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    return all(name in sans for name in wanted)


def server_certificate(data_dir: Path, hosts: list[str], name: str) -> tuple[Path, Path]:
    """A TLS server certificate for `hosts` (DNS names or IPs) signed by the development CA.

    Stored as data_dir/certs/<name>.crt and <name>.key; reused while it is still valid, signed
    by the current CA and covers every host asked for.
    """
    if not hosts:
        raise ValueError("a server certificate needs at least one host")
    wanted = [_general_name(host) for host in hosts]
    refused = [str(n.value) for n in wanted if not _permitted(n)]
    if refused:
        raise ValueError(
            f"the development CA only signs localhost names and loopback addresses, not {refused}"
        )
    ca_cert, ca_key = _load_ca(data_dir)
    certs_dir = _certs_dir(data_dir)
    cert_path, key_path = certs_dir / f"{name}.crt", certs_dir / f"{name}.key"
    if _still_good(cert_path, key_path, ca_cert, wanted):
        return cert_path, key_path

    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GitTix development"),
                    x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(wanted), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(certificate, key, cert_path, key_path)
    return cert_path, key_path


def trust_instructions(ca_cert: Path) -> str:
    """How to trust the CA on each platform and browser, as `make up`'s banner prints it."""
    ca = str(ca_cert)
    return "\n".join(
        [
            f"  Trust the development CA once ({ca}) so browsers show no warning:",
            f"    Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/gittix-dev-ca.crt"
            " && sudo update-ca-certificates",
            f"    Fedora/RHEL:   sudo cp {ca} /etc/pki/ca-trust/source/anchors/gittix-dev-ca.crt"
            " && sudo update-ca-trust",
            "    macOS:         sudo security add-trusted-cert -d -r trustRoot"
            f" -k /Library/Keychains/System.keychain {ca}",
            f"    Windows:       certutil -user -addstore Root {ca}",
            "    Chrome/Chromium on Linux (NSS):"
            f" certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n 'GitTix dev CA' -i {ca}",
            "    Firefox:       for p in ~/.mozilla/firefox/*.default*; do certutil -d sql:$p -A"
            f" -t C,, -n 'GitTix dev CA' -i {ca}; done   (or Settings > Certificates > Import)",
            f"    curl:          curl --cacert {ca} https://localhost:<port>/...",
        ]
    )
