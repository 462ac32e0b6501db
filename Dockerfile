# One image for the web app and the worker: `docker compose up` (compose.yaml) runs both.
#   docker build -t drip .
#   docker run --rm -e DRIP_SECRET_KEY=... -e DRIP_DATABASE_URL=postgresql+psycopg://... drip serve
#   docker run --rm ... drip run            # the worker
#   docker run --rm ... drip backup /var/lib/drip/backups/drip.backup   # any other drip command
# BASE: any Debian bookworm image with Python 3.11 (the default), or one made with debootstrap
# where no registry is reachable (README "Containers").
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/drip \
    PATH=/opt/drip/bin:$PATH

# pg_dump/pg_restore of the server's version (postgres:15) for `drip backup` / `drip restore`;
# python3-venv only matters on a plain Debian base (the python image has venv built in).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 ca-certificates \
 && (command -v python3.11 >/dev/null && python3.11 -c "import ensurepip" 2>/dev/null \
     || apt-get install -y --no-install-recommends python3 python3-venv) \
 && rm -rf /var/lib/apt/lists/*

# A package mirror or a TLS-inspecting proxy's CA, at build time only: --build-arg PIP_INDEX_URL=...
ARG PIP_INDEX_URL
ARG PIP_CERT
COPY pyproject.toml README.md scheduler.py /src/
COPY drip /src/drip
COPY campaigns /src/campaigns
COPY subscribers /src/subscribers
COPY delivery /src/delivery
COPY web /src/web
COPY templates /src/templates
COPY bench /src/bench
RUN python3 -m venv /opt/drip \
 && /opt/drip/bin/pip install /src \
 && rm -rf /src

COPY docker/entrypoint.sh /usr/local/bin/drip-entrypoint
RUN chmod 0755 /usr/local/bin/drip-entrypoint \
 && groupadd --system --gid 10001 drip \
 && useradd --system --uid 10001 --gid drip --home-dir /var/lib/drip --shell /usr/sbin/nologin drip \
 && mkdir -p /var/lib/drip/data /var/lib/drip/outbox /var/lib/drip/backups \
 && chown -R drip:drip /var/lib/drip

USER drip:drip
WORKDIR /var/lib/drip
ENV DRIP_DATA_DIR=/var/lib/drip/data \
    DRIP_OUTBOX_DIR=/var/lib/drip/outbox \
    DRIP_HOST=0.0.0.0 \
    DRIP_PORT=8000 \
    DRIP_LOG_FORMAT=json
VOLUME ["/var/lib/drip/outbox", "/var/lib/drip/backups"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["drip-entrypoint", "healthcheck"]
ENTRYPOINT ["drip-entrypoint"]
CMD ["serve"]
