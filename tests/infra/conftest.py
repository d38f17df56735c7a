"""Fixtures for the offline Kubernetes checks: rendered manifests, the Secrets, the tools."""

import sys
from pathlib import Path

import pytest

# The checks live beside the tests (infra_checks.py); the tests import them by name.
sys.path.insert(0, str(Path(__file__).parent))

import infra_checks
from devserver.k8s_secrets import K8sSecretsSettings, build_secrets


@pytest.fixture(scope="session")
def base_objects() -> list[infra_checks.Manifest]:
    """infra/k8s as kustomize renders it."""
    return infra_checks.kustomize(infra_checks.BASE)


@pytest.fixture(scope="session")
def gateway_objects() -> list[infra_checks.Manifest]:
    """The Gateway API variant (infra/overlays/gateway-api) as kustomize renders it."""
    return infra_checks.kustomize(infra_checks.GATEWAY_OVERLAY)


@pytest.fixture(scope="session")
def cluster_secrets(tmp_path_factory: pytest.TempPathFactory) -> list[infra_checks.Manifest]:
    """What `make k8s-secrets` would apply, built offline into a throwaway data dir."""
    settings = K8sSecretsSettings(
        ticketing_data_dir=tmp_path_factory.mktemp("k8s-secrets"),
        stripe_secret_key="sk_test_offline",
        stripe_publishable_key="pk_test_offline",
        stripe_webhook_secret="whsec_offline",
    )
    return build_secrets(settings)
