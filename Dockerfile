# syntax=docker/dockerfile:1
# Every service's image, from the repository root: docker build --build-arg SERVICE=auth .
# SERVICE is a name in devserver.routing.SERVICES (skaffold.yaml passes it for each image).
# Stages: base (python + non-root user), manifests (every workspace member's pyproject.toml and
# nothing else), build (uv installs the locked dependencies, then common and SERVICE; --no-dev, so
# no test support), dev (for `skaffold dev`: sources synced into the running container, uvicorn
# --reload), runtime (the default: the virtual environment only, no uv, no build tools).
ARG PYTHON_IMAGE=python:3.12-slim-trixie
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin app
WORKDIR /app

# uv checks the lock against every workspace member, so each member's pyproject.toml is needed;
# picked out of the context here so a new member needs no edit below, and so the dependency layer
# is rebuilt only when one of them or uv.lock changes (this stage reruns on any change, cheaply).
FROM base AS manifests
WORKDIR /context
RUN --mount=type=bind,target=/context \
    mkdir /manifests \
    && find . -maxdepth 2 -name pyproject.toml -exec cp --parents {} /manifests \;

FROM base AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# Declared this late so the layers above are shared by every service's build.
ARG SERVICE
COPY uv.lock ./
COPY --from=manifests /manifests/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-workspace --package ${SERVICE}
# Only the shared package and this service: a change to another service does not rebuild this one.
COPY common/ common/
COPY ${SERVICE}/ ${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable --package ${SERVICE}

# What dev and runtime share: the virtual environment, and uvicorn told which app to serve
# (UVICORN_APP is its APP argument), so the commands below need no shell to name the service.
FROM base AS service
ARG SERVICE
ENV UVICORN_APP=${SERVICE}.app:create_app
COPY --from=build /app/.venv /app/.venv

# `skaffold dev`: the sources are copied to /tmp/src (the pod's writable emptyDir, so the root
# filesystem stays read-only), imported from there ahead of the installed copies, and skaffold
# syncs edited files into it; uvicorn restarts when one changes.
FROM service AS dev
ARG SERVICE
COPY common/src/ /app/src/
COPY ${SERVICE}/src/ /app/src/
ENV PYTHONPATH=/tmp/src
USER 10001:10001
EXPOSE 8000
# Copy only once per pod: a container restart must not undo files synced since.
CMD ["sh", "-c", "[ -d /tmp/src ] || cp -R /app/src /tmp/src; exec uvicorn --factory --host 0.0.0.0 --port 8000 --reload --reload-dir /tmp/src"]

FROM service AS runtime
USER 10001:10001
EXPOSE 8000
# Ingress controllers sit in front. The app bounds its own shutdown on SIGTERM (requests in
# flight answered within SHUTDOWN_REQUEST_SECONDS, everything stopped within SHUTDOWN_SECONDS;
# see common/shutdown.py), so uvicorn needs no --timeout-graceful-shutdown of its own.
CMD ["uvicorn", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--forwarded-allow-ips", "*", \
     "--no-server-header"]
