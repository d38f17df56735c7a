"""The development CA and the server certificates it signs: what TLS clients will check."""

import datetime
import ipaddress
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from devserver.certs import ensure_ca, server_certificate


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_ca_is_created_once_and_reused(tmp_path: Path) -> None:
    cert, key = ensure_ca(tmp_path)
    before = (cert.read_bytes(), key.read_bytes())
    assert ensure_ca(tmp_path) == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before
    assert load(cert).extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_server_certificate_carries_the_hosts_and_server_auth(tmp_path: Path) -> None:
    cert, _ = server_certificate(tmp_path, ["localhost", "127.0.0.1", "::1"], "localhost")
    certificate = load(cert)
    sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime < datetime.timedelta(days=398)


def test_server_certificate_is_signed_by_the_ca(tmp_path: Path) -> None:
    ca_cert, _ = ensure_ca(tmp_path)
    cert, _ = server_certificate(tmp_path, ["ticketing.localhost"], "ticketing")
    load(cert).verify_directly_issued_by(load(ca_cert))
    checked = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(ca_cert),
            "-verify_hostname",
            "ticketing.localhost",
            str(cert),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_a_tls_client_trusting_the_ca_accepts_the_server(tmp_path: Path) -> None:
    cert, key = server_certificate(tmp_path, ["localhost", "127.0.0.1"], "localhost")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=ensure_ca(tmp_path)[0])

    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def accept() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        listener.settimeout(10)
        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_certificate_is_reused_while_it_covers_the_hosts(tmp_path: Path) -> None:
    first, _ = server_certificate(tmp_path, ["localhost", "127.0.0.1"], "localhost")
    content = first.read_bytes()
    again, _ = server_certificate(tmp_path, ["127.0.0.1"], "localhost")
    assert again.read_bytes() == content
    wider, _ = server_certificate(
        tmp_path, ["localhost", "127.0.0.1", "app.localhost"], "localhost"
    )
    assert wider.read_bytes() != content
    sans = load(wider).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "app.localhost" in sans.get_values_for_type(x509.DNSName)


def test_the_ca_refuses_names_outside_localhost(tmp_path: Path) -> None:
    # The CA is name-constrained; a certificate for a real domain would be rejected by clients.
    with pytest.raises(ValueError, match=r"example\.com"):
        server_certificate(tmp_path, ["example.com"], "outside")
