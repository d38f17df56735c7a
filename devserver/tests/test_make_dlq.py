"""`make dlq` reaches make up's NATS as its admin user, with the password make up keeps."""

from pathlib import Path

from common.bus_permissions import ADMIN_USER
from devserver.dlq import make_up_nats_url
from devserver.keys import ensure_passwords
from devserver.system import SystemConfig


def test_the_admin_password_make_up_keeps_is_in_the_url(tmp_path: Path) -> None:
    password = ensure_passwords(tmp_path, [f"nats/{ADMIN_USER}"])[f"nats/{ADMIN_USER}"]

    url = make_up_nats_url(SystemConfig(data_dir=tmp_path, nats_port=4333))

    assert url == f"nats://{ADMIN_USER}:{password}@127.0.0.1:4333"


def test_before_make_up_ever_ran_the_url_has_no_user(tmp_path: Path) -> None:
    assert make_up_nats_url(SystemConfig(data_dir=tmp_path)) == "nats://127.0.0.1:4222"
