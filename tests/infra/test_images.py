"""The Dockerfiles: hadolint clean, and the same layered, non-root, tool-free recipe for each."""

import re
from pathlib import Path

import pytest
from devserver.routing import SERVICES
from infra_checks import REPO_ROOT, dockerfile_problems, hadolint

SERVICE_NAMES = [service.name for service in SERVICES]


def dockerfile(service: str) -> str:
    return (REPO_ROOT / service / "Dockerfile").read_text()


def test_hadolint_passes_on_every_dockerfile() -> None:
    result = hadolint([REPO_ROOT / service / "Dockerfile" for service in SERVICE_NAMES])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_sloppy_dockerfile(tmp_path: Path) -> None:
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text(
        dockerfile("auth") + "\nRUN apt-get update && apt-get install -y curl\nRUN cd /app && ls\n"
    )
    result = hadolint([sloppy])
    assert result.returncode != 0
    for rule in ("DL3008", "DL3009", "DL3015", "DL3003"):
        assert rule in result.stdout


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_image_recipe(service: str) -> None:
    assert dockerfile_problems(service, dockerfile(service)) == []


def test_every_service_uses_the_same_recipe() -> None:
    # One recipe, so a fix to one image is a fix to all: only the service name differs (the
    # list of every member's pyproject.toml is the same in all of them and is left as it is).
    def recipe(service: str) -> str:
        return "\n".join(
            line
            if re.fullmatch(r"COPY \w+/pyproject\.toml \w+/pyproject\.toml", line)
            else line.replace(service, "SERVICE")
            for line in dockerfile(service).splitlines()
        )

    recipes = {s: recipe(s) for s in SERVICE_NAMES}
    assert len(set(recipes.values())) == 1, sorted(recipes)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "COPY --from=build /app/.venv /app/.venv\nUSER",
                "COPY --from=build /app/.venv /app/.venv\nCOPY --from=uv /uv /bin/uv\nUSER",
            ),
            "orders: the final image copies --from=uv /uv /bin/uv",
        ),
        (
            ('"--port", "8000", \\\n     "--proxy', '"--port", "8080", \\\n     "--proxy'),
            "orders: the runtime stage does not listen on 8000",
        ),
        (
            (
                "FROM base AS runtime\nCOPY --from=build /app/.venv /app/.venv\nUSER 10001:10001",
                "FROM base AS runtime\nCOPY --from=build /app/.venv /app/.venv\nUSER root",
            ),
            "orders: the final image runs as root",
        ),
        (
            ("COPY orders/ orders/", "COPY orders/ orders/\nCOPY tickets/ tickets/"),
            "orders: the build copies ['common', 'orders', 'tickets'], not just common and orders",
        ),
        (
            ("ARG PYTHON_IMAGE=python:3.12-slim-trixie", "ARG PYTHON_IMAGE=python:3.12"),
            "orders: the final image is based on python:3.12, not a slim Python",
        ),
        (
            ("orders.app:create_app --factory", "orders.main:app"),
            "orders: the dev stage does not serve orders.app:create_app with uvicorn",
        ),
        (("--no-editable ", ""), "orders: the service is not installed non-editable"),
        (
            ("COPY devserver/pyproject.toml devserver/pyproject.toml\n", ""),
            "orders: the build copies ['auth/pyproject.toml', 'client/pyproject.toml', "
            "'common/pyproject.toml', 'expiration/pyproject.toml', 'orders/pyproject.toml', "
            "'payments/pyproject.toml', 'tickets/pyproject.toml'], the workspace has "
            "['auth/pyproject.toml', 'client/pyproject.toml', 'common/pyproject.toml', "
            "'devserver/pyproject.toml', 'expiration/pyproject.toml', 'orders/pyproject.toml', "
            "'payments/pyproject.toml', 'tickets/pyproject.toml']",
        ),
        (
            ("ENV PYTHONPATH=/tmp/src", "ENV PYTHONPATH=/app/src"),
            "orders: the dev stage does not import from /tmp/src",
        ),
    ],
)
def test_a_broken_recipe_is_reported(change: tuple[str, str], expected: str) -> None:
    original = dockerfile("orders")
    old, new = change
    assert old in original, f"the mutation no longer applies: {old!r}"
    assert expected in dockerfile_problems("orders", original.replace(old, new, 1))


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
