# AudioMuse sidecar image: the web app (`audiomuse web`) or a worker (`audiomuse worker`)
# against external PostgreSQL + pgvector and Redis (see deployment/docker-compose.yml), or
# everything embedded with `audiomuse up` (the default command).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUDIOMUSE_DATA_DIR=/data \
    WEB_HOST=0.0.0.0 \
    WEB_PORT=8000

WORKDIR /app
COPY pyproject.toml README.md schema.sql ./
COPY sidecar ./sidecar
COPY models ./models
RUN pip install -e . \
    && useradd --system --uid 1000 --home-dir /data audiomuse \
    && mkdir -p /data && chown audiomuse /data

USER audiomuse
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["audiomuse", "up"]
