# AudioMuse sidecar image.  `audiomuse` is the entry point:
#   docker run ... IMAGE            -> `audiomuse up`: everything in one container (embedded
#                                      PostgreSQL + pgvector and Valkey in /data)
#   docker run ... IMAGE web        -> the web app and bridges against external PostgreSQL/Redis
#   docker run ... IMAGE worker     -> one worker (scale these)
#   docker run ... IMAGE check      -> validate the configuration and reach every server
# Compose files and Kubernetes manifests: deployment/.
#
# Two stages: the first builds the project's wheel and installs it with every dependency into a
# virtual environment, from binary wheels only (no compiler is needed, none is installed); the
# second copies that environment onto a clean slim image and runs it as an unprivileged user.
# No TensorFlow: MusiCNN runs in ONNX Runtime, the two models ship inside the package.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# sidecar/models and sidecar/schema.sql link to ../models and ../schema.sql: copy both sides.
COPY pyproject.toml README.md schema.sql ./
COPY models ./models
COPY sidecar ./sidecar
# Then check that the models are inside the package and intact, and that no dependency brought
# TensorFlow in.
RUN python3 -m venv /opt/audiomuse \
    && /opt/audiomuse/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/audiomuse/bin/pip install --only-binary=:all: /wheels/*.whl \
    && /opt/audiomuse/bin/pip uninstall -y pip \
    && cd "$(/opt/audiomuse/bin/python -c 'import pathlib, sidecar; print(pathlib.Path(sidecar.__file__).parent / "models")')" \
    && sha256sum -c SHA256SUMS \
    && /opt/audiomuse/bin/python -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("tensorflow") is not None)'

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="AudioMuse sidecar" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later"
ENV PATH=/opt/audiomuse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    AUDIOMUSE_DATA_DIR=/data \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8000 \
    BRIDGE_HOST=0.0.0.0
COPY --from=build /opt/audiomuse /opt/audiomuse
RUN groupadd --system --gid 1000 audiomuse \
    && useradd --system --uid 1000 --gid 1000 --home-dir /data --shell /usr/sbin/nologin audiomuse \
    && mkdir -p /data \
    && chown audiomuse:audiomuse /data
USER 1000:1000
WORKDIR /data
EXPOSE 8000
# /healthz answers 200 (ok, or degraded while no worker runs) and 503 when the database or Redis
# is unreachable.  A worker container serves no HTTP: the compose files turn this check off there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WEB_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["audiomuse"]
CMD ["up"]
