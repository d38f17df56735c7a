"""The committed generated docs (event catalog, OpenAPI) match what `make docs` would write now."""

from pathlib import Path

from devserver.docs import render_all

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_committed_generated_docs_are_current() -> None:
    stale = [
        name
        for name, content in render_all().items()
        if not (DOCS / name).exists() or (DOCS / name).read_text() != content
    ]

    assert stale == [], f"stale generated docs {stale}: run `make docs` and commit the result"


def test_catalog_names_every_service_that_sends_or_receives() -> None:
    catalog = render_all()["events.md"]

    for service in ("auth", "tickets", "orders", "expiration", "payments"):
        assert f"{service}([{service}])" in catalog
