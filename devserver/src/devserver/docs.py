"""`make docs` / `make docs-check`: write the generated docs into docs/, or fail if one is stale.

`python -m devserver.docs write` writes docs/asyncapi.json and docs/events.md from every
service's contract (common.catalog), and docs/openapi/<service>.json for every service of
devserver.routing.SERVICES that has an HTTP API; `check` exits 1 naming each file that differs,
is missing, or is left over from a service that no longer has an API.
"""

import argparse
import functools
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from common.catalog import render
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from devserver.routing import SERVICES, ServiceProcess
from devserver.system import repo_root

OPENAPI_DIR = "openapi"


def _throwaway_keys() -> dict[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"jwt_private_key": private.decode(), "jwt_public_key": public.decode()}


def service_app(service: ServiceProcess) -> FastAPI:
    """The service's app as its factory builds it, configured with placeholders: the API it
    describes does not depend on configuration, and nothing is connected (no lifespan runs)."""
    settings_class = importlib.import_module(f"{service.name}.settings").Settings
    keys = _throwaway_keys()
    required = {
        name: keys.get(name, f"{name}-unused-by-openapi")
        for name, field in settings_class.model_fields.items()
        if field.is_required()
    }
    # model_construct: no environment read, so the output is the same on every machine.
    settings = settings_class.model_construct(**required)
    module_name, _, factory_name = service.factory.partition(":")
    app = getattr(importlib.import_module(module_name), factory_name)(settings)
    if not isinstance(app, FastAPI):
        raise TypeError(f"{service.factory} did not build a FastAPI app")
    return app


def openapi_documents() -> dict[str, dict[str, Any]]:
    """Every service's OpenAPI document, by service name; services with no route in their schema
    (expiration only reports health, the client serves pages) have none."""
    documents = {}
    for service in SERVICES:
        document = service_app(service).openapi()
        if document.get("paths"):
            documents[service.name] = document
    return documents


@functools.cache
def _openapi_files() -> tuple[tuple[str, str], ...]:
    # Building every app is the slow part of rendering, and the code does not change while a
    # process runs: once per process.
    return tuple(
        (f"{OPENAPI_DIR}/{name}.json", json.dumps(document, indent=2, sort_keys=True) + "\n")
        for name, document in openapi_documents().items()
    )


def render_all() -> dict[str, str]:
    """Every generated file under docs/, by path relative to docs/, as it should be committed."""
    return {**render(), **dict(_openapi_files())}


def _left_over(docs_dir: Path, files: dict[str, str]) -> list[str]:
    # An OpenAPI document of a service that no longer has an API (or no longer exists).
    return sorted(
        f"{OPENAPI_DIR}/{path.name}"
        for path in (docs_dir / OPENAPI_DIR).glob("*.json")
        if f"{OPENAPI_DIR}/{path.name}" not in files
    )


def stale_files(docs_dir: Path) -> list[str]:
    """The generated files whose committed content differs from what would be generated now,
    and generated files left over that nothing generates any more."""
    files = render_all()
    differing = [
        name
        for name, content in files.items()
        if not (docs_dir / name).exists() or (docs_dir / name).read_text() != content
    ]
    return differing + _left_over(docs_dir, files)


def write(docs_dir: Path) -> list[str]:
    files = render_all()
    for name in _left_over(docs_dir, files):
        (docs_dir / name).unlink()
    written = []
    for name, content in files.items():
        (docs_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (docs_dir / name).write_text(content)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devserver.docs", description=__doc__)
    parser.add_argument("action", choices=["write", "check"])
    parser.add_argument("--docs-dir", type=Path, default=repo_root() / "docs")
    args = parser.parse_args(argv)
    if args.action == "write":
        for name in write(args.docs_dir):
            print(f"wrote {args.docs_dir / name}")
        return 0
    stale = stale_files(args.docs_dir)
    for name in stale:
        print(f"{args.docs_dir / name} is stale: run `make docs` and commit it", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
