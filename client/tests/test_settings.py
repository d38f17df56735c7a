"""client's settings: the publishable key is optional and must look like one when given."""

import pytest
from client.settings import Settings
from pydantic import ValidationError


def test_blank_publishable_key_means_test_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "")

    assert Settings().stripe_publishable_key is None


def test_publishable_key_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "pk_test_abc")

    assert Settings().stripe_publishable_key == "pk_test_abc"


def test_a_secret_key_in_place_of_the_publishable_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A secret key would be sent to every browser: refuse to start instead.
    monkeypatch.setenv("STRIPE_PUBLISHABLE_KEY", "sk_test_abc")

    with pytest.raises(ValidationError):
        Settings()
