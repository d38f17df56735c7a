"""The one Dockerfile: hadolint clean, and for every service (--build-arg SERVICE) the same
layered, non-root, tool-free recipe installing only common and that service."""

from pathlib import Path

import pytest
from devserver.routing import SERVICES
from infra_checks import DOCKERFILE, REPO_ROOT, dockerfile_problems, hadolint, workspace_members

SERVICE_NAMES = [service.name for service in SERVICES]
# At -maxdepth 1 `find` sees only the root's pyproject.toml, none of the members'.
MEMBER_MANIFESTS = sorted(f"{member}/pyproject.toml" for member in workspace_members())


def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_hadolint_passes_on_the_dockerfile() -> None:
    result = hadolint([DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_sloppy_dockerfile(tmp_path: Path) -> None:
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text(
        dockerfile() + "\nRUN apt-get update && apt-get install -y curl\nRUN cd /app && ls\n"
    )
    result = hadolint([sloppy])
    assert result.returncode != 0
    for rule in ("DL3008", "DL3009", "DL3015", "DL3003"):
        assert rule in result.stdout


def test_one_dockerfile_serves_every_service() -> None:
    # A fix to the recipe is a fix to every image: no service keeps a Dockerfile of its own.
    others = sorted(
        str(path.relative_to(REPO_ROOT))
        for top in REPO_ROOT.iterdir()
        if top.is_dir() and not top.name.startswith(".")
        for path in top.glob("**/*Dockerfile*")
    )
    assert others == []


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_image_recipe(service: str) -> None:
    assert dockerfile_problems(service, dockerfile()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "COPY --from=build /app/.venv /app/.venv\n",
                "COPY --from=build /app/.venv /app/.venv\nCOPY --from=uv /uv /bin/uv\n",
            ),
            "orders: the final image copies --from=uv /uv /bin/uv",
        ),
        (
            ('"--port", "8000", \\\n     "--proxy', '"--port", "8080", \\\n     "--proxy'),
            "orders: the runtime stage does not listen on 8000",
        ),
        (
            ("FROM service AS runtime\nUSER 10001:10001", "FROM service AS runtime\nUSER root"),
            "orders: the final image runs as root",
        ),
        (
            (
                "COPY ${SERVICE}/ ${SERVICE}/",
                "COPY ${SERVICE}/ ${SERVICE}/\nCOPY tickets/ tickets/",
            ),
            "orders: the build copies ['common', 'orders', 'tickets'], not just common and orders",
        ),
        (
            ("COPY uv.lock ./\n", "COPY uv.lock ./\nCOPY common/ common/\n"),
            "orders: sources are copied before the dependency layer",
        ),
        (
            ("ARG PYTHON_IMAGE=python:3.12-slim-trixie", "ARG PYTHON_IMAGE=python:3.12"),
            "orders: the final image is based on python:3.12, not a slim Python",
        ),
        (
            ("UVICORN_APP=${SERVICE}.app:create_app", "UVICORN_APP=${SERVICE}.main:app"),
            "orders: the dev stage does not serve orders.app:create_app with uvicorn",
        ),
        (("--no-editable ", ""), "orders: the service is not installed non-editable"),
        (
            ("--no-dev --no-editable", "--no-editable"),
            "orders: `uv sync --locked --no-editable --package orders` installs dev-only "
            "packages (no --no-dev)",
        ),
        (
            # Without the ARG in the build stage ${SERVICE} is empty there: no service installed.
            ("ARG SERVICE\nCOPY uv.lock", "COPY uv.lock"),
            "orders: the build copies ['${SERVICE}', 'common'], not just common and orders",
        ),
        (
            ("-maxdepth 2", "-maxdepth 1"),
            f"orders: the dependency layer misses {MEMBER_MANIFESTS} (uv sync --locked needs "
            "every workspace member's pyproject.toml)",
        ),
        (
            ("-name pyproject.toml", "-name '*'"),
            "orders: the dependency layer takes every file named *, not only pyproject.toml",
        ),
        (
            ("ENV PYTHONPATH=/tmp/src", "ENV PYTHONPATH=/app/src"),
            "orders: the dev stage does not import from /tmp/src",
        ),
    ],
)
def test_a_broken_recipe_is_reported(change: tuple[str, str], expected: str) -> None:
    original = dockerfile()
    old, new = change
    assert old in original, f"the mutation no longer applies: {old!r}"
    problems = dockerfile_problems("orders", original.replace(old, new, 1))
    assert expected in problems, problems


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    ignored = {
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "**/.venv", ".data", "**/__pycache__", "**/tests"} <= ignored
    # What the images are built from must stay in the context.
    for needed in ("uv.lock", "pyproject.toml", "common", *SERVICE_NAMES):
        assert needed not in ignored
