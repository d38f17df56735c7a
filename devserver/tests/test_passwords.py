"""The generated passwords: kept across runs, and of a shape nats-server and URLs take as is."""

import json
from pathlib import Path

from devserver.keys import PASSWORD_FORMAT, ensure_passwords, new_password, stored_password


def test_passwords_are_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_passwords(tmp_path, ["nats/tickets", "mongo/tickets"])
    again = ensure_passwords(tmp_path, ["mongo/tickets", "nats/orders"])
    assert again["mongo/tickets"] == first["mongo/tickets"]
    assert again["nats/orders"] not in first.values()
    assert stored_password(tmp_path, "nats/tickets") == first["nats/tickets"]
    assert stored_password(tmp_path, "nats/nobody") is None
    assert (tmp_path / "keys" / "passwords.json").stat().st_mode & 0o777 == 0o600


def test_every_password_starts_with_a_letter() -> None:
    # nats-server parses a password from the environment as a value: "-x..." or "42x..." would
    # be read as a number and the server would refuse its configuration.
    for _ in range(500):
        password = new_password()
        assert PASSWORD_FORMAT.match(password) and password[0].isalpha()


def test_a_stored_password_of_the_old_shape_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "passwords.json").write_text(json.dumps({"nats/admin": "-9fj_Zq"}))
    replaced = ensure_passwords(tmp_path, ["nats/admin"])["nats/admin"]
    assert PASSWORD_FORMAT.match(replaced)
    assert stored_password(tmp_path, "nats/admin") == replaced
