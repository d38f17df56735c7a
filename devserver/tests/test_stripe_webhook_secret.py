"""make up's webhook secret: a Stripe-shaped signing secret, made once and kept in the data dir."""

from pathlib import Path

from devserver import infrastructure


def test_the_webhook_secret_is_made_once_and_reused(tmp_path: Path) -> None:
    first = infrastructure.webhook_secret(tmp_path)

    assert first.startswith("whsec_") and len(first) > len("whsec_") + 32
    assert infrastructure.webhook_secret(tmp_path) == first
    assert infrastructure.webhook_secret(tmp_path / "elsewhere") != first


def test_payments_and_the_client_get_what_the_fake_stripe_needs(tmp_path: Path) -> None:
    env = infrastructure.fake_stripe_env(8420, infrastructure.webhook_secret(tmp_path))

    assert env["STRIPE_API_BASE"] == "http://127.0.0.1:8420"
    assert env["STRIPE_WEBHOOK_SECRET"] == infrastructure.webhook_secret(tmp_path)
    assert env["STRIPE_JS_URL"] == "http://127.0.0.1:8420/js.stripe.com/v3/"
