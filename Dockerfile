# syntax=docker/dockerfile:1
# One image for every service; docker-compose.yml picks the service with
# `command: ["python", "-m", "services.<name>"]`.
#
#   docker build -t dossier-routing:local .
#   docker run --rm -e DATABASE_URL=... -e KAFKA_BOOTSTRAP_SERVERS=... \
#     -e INTAKE_HOST=0.0.0.0 -p 127.0.0.1:8000:8000 dossier-routing:local
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Runtime dependencies not wanted in the image. pgserver is the embedded Postgres of `make run`
# and the tests (lazily imported by infra.postgres only); in a container DATABASE_URL points at
# a real server, and pgserver would add ~35 MB and has no linux/arm64 wheel.
ARG EXCLUDED_DEPENDENCIES="pgserver"

RUN useradd --system --user-group --uid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change.
# (Only [project].dependencies: the dev extra is never installed.)
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python -c "import os, re, tomllib; \
excluded = set(os.environ.get('EXCLUDED_DEPENDENCIES', '').split()); \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
name = lambda d: re.split(r'[\s\[<>=!~;]', d, maxsplit=1)[0].lower(); \
print('\n'.join(d for d in deps if name(d) not in excluded))" > /tmp/requirements.txt \
 && cat /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# Then the project itself (contracts, services, infra and their data files) into site-packages.
# The source is bind-mounted, not copied, so it leaves no second copy in the image. The import
# check covers every service whose package declares a manifest (services/manifest.py).
RUN --mount=type=bind,target=/src,rw \
    --mount=type=cache,target=/root/.cache/pip \
    pip install --no-deps /src \
 && python -c "import services.manifest as m; m.import_all(); print(*m.names())"

USER app

# Overridden per service in docker-compose.yml.
CMD ["python", "-m", "services.intake"]
