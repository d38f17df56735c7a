"""The committed generated docs (event catalog, OpenAPI) match what `make docs` would write now."""

import json
from pathlib import Path

from devserver.docs import (
    NATS_USERS_CONF,
    render_all,
    render_infra,
    stale_files,
    stale_infra,
    write,
)
from devserver.routing import SERVICES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_committed_generated_docs_are_current() -> None:
    stale = [
        name
        for name, content in render_all().items()
        if not (DOCS / name).exists() or (DOCS / name).read_text() != content
    ]

    assert stale == [], f"stale generated docs {stale}: run `make docs` and commit the result"


def test_the_clusters_nats_users_are_current(tmp_path: Path) -> None:
    assert stale_infra(ROOT) == [], "infra/k8s/nats-users.conf is stale: run `make docs`"

    # An edited copy (tickets allowed to publish charges) is found stale.
    edited = tmp_path / NATS_USERS_CONF
    edited.parent.mkdir(parents=True)
    content = render_infra()[NATS_USERS_CONF]
    edited.write_text(content.replace('"ticketing.ticket.created.v1"', '"ticketing.charge.>"'))
    assert stale_infra(tmp_path) == [str(NATS_USERS_CONF)]


def test_catalog_names_every_service_that_sends_or_receives() -> None:
    catalog = render_all()["events.md"]

    for service in (s.name for s in SERVICES if s.owns_data):
        assert f"{service}([{service}])" in catalog


def test_every_http_api_is_documented_as_openapi() -> None:
    documents = {
        name: json.loads(content)
        for name, content in render_all().items()
        if name.startswith("openapi/")
    }

    assert sorted(documents) == [
        "openapi/auth.json",
        "openapi/orders.json",
        "openapi/payments.json",
        "openapi/tickets.json",
    ]
    assert "/api/orders/{order_id}" in documents["openapi/orders.json"]["paths"]
    assert "/api/users/signin" in documents["openapi/auth.json"]["paths"]


def test_an_edited_or_left_over_openapi_document_is_stale(tmp_path: Path) -> None:
    write(tmp_path)
    assert stale_files(tmp_path) == []

    edited = tmp_path / "openapi" / "tickets.json"
    edited.write_text(edited.read_text().replace("/api/tickets", "/api/tix"))
    (tmp_path / "openapi" / "refunds.json").write_text("{}\n")
    assert stale_files(tmp_path) == ["openapi/tickets.json", "openapi/refunds.json"]

    write(tmp_path)
    assert stale_files(tmp_path) == []
    assert not (tmp_path / "openapi" / "refunds.json").exists()
