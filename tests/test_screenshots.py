"""The README's screenshots were taken of the pages as they are now (devserver.screenshots).

No browser runs here: the pages are served in-process and hashed as `make screenshots` hashed them.
"""

import re
import shutil
from pathlib import Path

import client.app
import client.routes
import pytest
from devserver.screenshots import (
    MANIFEST_NAME,
    SCREENS,
    read_manifest,
    record,
    screen_of,
    screenshot_dir,
    stale_screenshots,
)
from fastapi.templating import Jinja2Templates

ROOT = Path(__file__).resolve().parents[1]
README_PICTURE = re.compile(r"\(docs/screenshots/([\w-]+)\.png\)")


def test_committed_screenshots_show_the_pages_as_they_are_now() -> None:
    stale = stale_screenshots(screenshot_dir())

    assert stale == [], (
        f"docs/screenshots {stale} are stale (their page's HTML, CSS or JS changed since they "
        "were taken): run `make screenshots` and commit docs/screenshots/"
    )


def test_every_picture_in_the_readme_is_a_recorded_screenshot() -> None:
    pictures = README_PICTURE.findall((ROOT / "README.md").read_text())
    taken = sorted(path.stem for path in screenshot_dir().glob("*.png"))

    assert sorted(pictures) == sorted(SCREENS) == taken == sorted(read_manifest(screenshot_dir()))


def test_a_screenshot_is_known_by_its_page_whatever_the_ids() -> None:
    base = "https://127.0.0.1:8443"
    ticket = "65f1a2b3c4d5e6f708192a3b"

    assert screen_of(f"{base}/") == "landing"
    assert screen_of(f"{base}/tickets/{ticket}") == "ticket"
    assert screen_of(f"{base}/signin?next=%2Ftickets%2F{ticket}") == "sign-in"
    assert screen_of(f"{base}/signin") is None
    assert screen_of(f"{base}/tickets/mine") is None


@pytest.fixture
def client_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The web client's pages served from an editable copy of its templates and static files."""
    source = Path(client.app.__file__).parent
    copy = tmp_path / "client"
    shutil.copytree(source / "templates", copy / "templates")
    shutil.copytree(source / "static", copy / "static")
    monkeypatch.setattr(client.app, "STATIC_DIR", copy / "static")
    monkeypatch.setattr(client.routes, "templates", Jinja2Templates(directory=copy / "templates"))
    return copy


def _taken(directory: Path) -> Path:
    """Pictures recorded for the pages as they are now (the PNGs' content does not matter)."""
    directory.mkdir()
    for name in SCREENS:
        (directory / f"{name}.png").write_bytes(b"")
    record(directory, *SCREENS)
    return directory


def test_a_changed_page_makes_exactly_the_pictures_that_show_it_stale(
    client_copy: Path, tmp_path: Path
) -> None:
    pictures = _taken(tmp_path / "screenshots")
    assert stale_screenshots(pictures) == []

    landing_js = client_copy / "static" / "js" / "pages" / "landing.js"
    landing_js.write_text(landing_js.read_text() + "\n// changed\n")
    assert stale_screenshots(pictures) == ["landing"]

    # A module the order pages import, then a template only the order page uses.
    countdown = client_copy / "static" / "js" / "countdown.js"
    countdown.write_text(countdown.read_text().replace("Time left", "Time remaining"))
    order_html = client_copy / "templates" / "order.html"
    order_html.write_text(order_html.read_text().replace("Test card", "Card"))
    assert stale_screenshots(pictures) == ["landing", "order", "my-orders"]

    css = client_copy / "static" / "css" / "site.css"
    css.write_text(css.read_text() + "\nmain { padding: 0; }\n")
    assert stale_screenshots(pictures) == list(SCREENS)

    record(pictures, "order")
    assert "order" not in stale_screenshots(pictures)


def test_a_missing_picture_or_manifest_is_stale(tmp_path: Path) -> None:
    pictures = _taken(tmp_path / "screenshots")

    (pictures / "ticket.png").unlink()
    assert stale_screenshots(pictures) == ["ticket"]

    (pictures / MANIFEST_NAME).unlink()
    assert stale_screenshots(pictures) == list(SCREENS)
