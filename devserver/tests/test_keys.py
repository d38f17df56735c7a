"""The development JWT key pair: created once, reused, and usable for signing sessions."""

import stat
from pathlib import Path

from common.auth import sign_session, verify_session
from devserver.keys import ensure_jwt_keys


def test_keys_are_created_once_and_reused(tmp_path: Path) -> None:
    first = ensure_jwt_keys(tmp_path)
    second = ensure_jwt_keys(tmp_path)
    assert first == second
    assert "PRIVATE KEY" in first[0]
    assert "PUBLIC KEY" in first[1]


def test_private_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    ensure_jwt_keys(tmp_path)
    private = next((tmp_path / "keys").glob("*private*"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_session_signed_with_the_private_key_verifies_with_the_public_one(
    tmp_path: Path,
) -> None:
    private_pem, public_pem = ensure_jwt_keys(tmp_path)
    token = sign_session(user_id="u1", email="a@example.com", private_key=private_pem)
    user = verify_session(token, public_pem)
    assert user is not None and user.id == "u1"


def test_different_data_dirs_get_different_keys(tmp_path: Path) -> None:
    assert ensure_jwt_keys(tmp_path / "a") != ensure_jwt_keys(tmp_path / "b")
