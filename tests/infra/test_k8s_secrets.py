"""`make k8s-secrets`: the Secrets it would apply, rendered offline (no cluster is touched)."""

import base64
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from devserver.certs import ensure_ca
from devserver.routing import SERVICES
from infra_checks import HOST, Manifest, find, main_container, of_kind, schema_problems

from devserver import k8s_secrets


def secret_data(secrets: list[Manifest], name: str) -> dict[str, bytes]:
    secret = find(secrets, "Secret", name)
    assert secret is not None, f"no Secret {name}"
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


# Every Secret `make k8s-secrets` makes: the keys, certificate and Stripe's, the NATS server's
# passwords, and per data service its own URLs and its MongoDB's users.
EXPECTED_SECRETS = {
    "jwt-public-key",
    "jwt-private-key",
    "stripe",
    "ticketing-tls",
    "nats-users",
    *(
        f"{service.name}-{kind}"
        for service in SERVICES
        if service.owns_data
        for kind in ("credentials", "mongo-credentials")
    ),
}


def test_the_secrets_pass_the_strict_schema(cluster_secrets: list[Manifest]) -> None:
    assert schema_problems(cluster_secrets) == []
    assert {s["metadata"]["namespace"] for s in cluster_secrets} == {"gittix"}


def test_every_secret_the_manifests_use_is_created(
    cluster_secrets: list[Manifest], base_objects: list[Manifest], gateway_objects: list[Manifest]
) -> None:
    created = {(s["metadata"]["name"], key) for s in cluster_secrets for key in s["data"]}
    used: set[tuple[str, str]] = set()
    whole = set()  # Secrets a container takes every key of (envFrom)
    for workload in of_kind(base_objects, "Deployment") + of_kind(base_objects, "StatefulSet"):
        for item in main_container(workload).get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add((ref["name"], ref["key"]))
        for source in main_container(workload).get("envFrom", []):
            if "secretRef" in source:
                whole.add(source["secretRef"]["name"])
    assert whole <= {s["metadata"]["name"] for s in cluster_secrets}
    assert "nats-users" in whole and "orders-mongo-credentials" in whole
    for ingress in of_kind(base_objects, "Ingress"):
        for tls in ingress["spec"]["tls"]:
            used |= {(tls["secretName"], "tls.crt"), (tls["secretName"], "tls.key")}
    for gateway in of_kind(gateway_objects, "Gateway"):
        for listener in gateway["spec"]["listeners"]:
            for ref in listener.get("tls", {}).get("certificateRefs", []):
                used |= {(ref["name"], "tls.crt"), (ref["name"], "tls.key")}
    assert used <= created, used - created
    tls = find(cluster_secrets, "Secret", k8s_secrets.TLS_SECRET)
    assert tls is not None and tls["type"] == "kubernetes.io/tls"


def test_the_tls_certificate_is_for_the_host_and_signed_by_the_dev_ca(tmp_path: Path) -> None:
    settings = k8s_secrets.K8sSecretsSettings(
        ticketing_data_dir=tmp_path, stripe_secret_key="sk_test_offline"
    )
    data = secret_data(k8s_secrets.build_secrets(settings), k8s_secrets.TLS_SECRET)
    certificate = x509.load_pem_x509_certificate(data["tls.crt"])
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert HOST in names.get_values_for_type(x509.DNSName)
    ca_path, _ = ensure_ca(tmp_path)
    # The CA `make up` created and the developer trusts: the browser shows no warning.
    certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_path.read_bytes()))
    key = serialization.load_pem_private_key(data["tls.key"], password=None)
    assert key.public_key() == certificate.public_key()


def test_the_jwt_secrets_are_one_key_pair(cluster_secrets: list[Manifest]) -> None:
    private = secret_data(cluster_secrets, k8s_secrets.JWT_PRIVATE_SECRET)[
        k8s_secrets.JWT_PRIVATE_KEY
    ]
    public = secret_data(cluster_secrets, k8s_secrets.JWT_PUBLIC_SECRET)[k8s_secrets.JWT_PUBLIC_KEY]
    key = serialization.load_pem_private_key(private, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    assert (
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public
    )
    # Only auth may mint sessions: the private key is a Secret of its own.
    assert k8s_secrets.JWT_PUBLIC_SECRET != k8s_secrets.JWT_PRIVATE_SECRET


def test_a_second_run_reuses_the_keys_and_certificate(tmp_path: Path) -> None:
    settings = k8s_secrets.K8sSecretsSettings(
        ticketing_data_dir=tmp_path, stripe_secret_key="sk_test_offline"
    )
    assert k8s_secrets.build_secrets(settings) == k8s_secrets.build_secrets(settings)


def test_without_a_stripe_key_it_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    assert k8s_secrets.main(["--print"]) == 1
    assert "STRIPE_SECRET_KEY=sk_test_... make k8s-secrets" in capsys.readouterr().err


def test_a_publishable_key_in_place_of_the_secret_key_is_refused(tmp_path: Path) -> None:
    settings = k8s_secrets.K8sSecretsSettings(
        ticketing_data_dir=tmp_path, stripe_secret_key="pk_test_oops"
    )
    with pytest.raises(k8s_secrets.SecretsError, match="secret key"):
        k8s_secrets.build_secrets(settings)


def test_print_writes_a_list_kubectl_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETING_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_offline")
    monkeypatch.delenv("STRIPE_PUBLISHABLE_KEY", raising=False)
    assert k8s_secrets.main(["--print"]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["kind"] == "List"
    names = {item["metadata"]["name"] for item in rendered["items"]}
    assert names == EXPECTED_SECRETS
    stripe = secret_data(rendered["items"], "stripe")
    # No publishable key given: the client's optional reference stays unset (test cards).
    assert stripe == {"secret-key": b"sk_test_offline"}


def test_apply_creates_the_namespace_then_applies_the_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A stand-in kubectl that records what it is asked: no cluster is touched.
    record = tmp_path / "calls"
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text(
        f'#!/bin/sh\necho "$@" >> {record}\nif [ "$3" = "-" ]; then cat >> {record}; fi\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("TICKETING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_offline")
    assert k8s_secrets.main([]) == 0
    calls = record.read_text()
    first, second = calls.splitlines()[:2]
    assert first == f"apply -f {k8s_secrets.NAMESPACE_MANIFEST}"
    assert second == "apply -f -"
    applied = json.loads(calls.split("apply -f -\n", 1)[1])
    assert {i["metadata"]["name"] for i in applied["items"]} == EXPECTED_SECRETS
    assert "Trust the development CA" in capsys.readouterr().out


def test_a_failing_kubectl_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "bin" / "kubectl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'The connection to the server was refused' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setenv("TICKETING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_offline")
    assert k8s_secrets.main([]) == 1
    assert "kubectl failed" in capsys.readouterr().err


def test_the_webhook_secret_goes_to_the_stripe_secret_and_a_wrong_one_is_refused(
    tmp_path: Path,
) -> None:
    settings = k8s_secrets.K8sSecretsSettings(
        ticketing_data_dir=tmp_path,
        stripe_secret_key="sk_test_offline",
        stripe_webhook_secret="whsec_offline",
    )
    stripe = secret_data(k8s_secrets.build_secrets(settings), "stripe")
    assert stripe == {"secret-key": b"sk_test_offline", "webhook-secret": b"whsec_offline"}

    wrong = settings.model_copy(update={"stripe_webhook_secret": "sk_test_oops"})
    with pytest.raises(k8s_secrets.SecretsError, match="whsec_"):
        k8s_secrets.build_secrets(wrong)
