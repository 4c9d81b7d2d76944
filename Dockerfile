# Upzento Appointments: one image for every process (web, worker, scheduler, relay, migrations).
#   docker build -t upzento .
#   docker compose up            (compose.yaml: the whole production topology)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Pango/HarfBuzz/fonts for weasyprint (PDF reports); curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
        fonts-dejavu-core curl \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Compiled message catalogues (translations/*.po -> .mo; the app would compile them at start-up,
# which a read-only file system refuses) and bytecode, both at build time.
RUN python -m app.i18n compile --force \
 && python -m compileall -q app config.py tenants \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin upzento \
 && mkdir -p /app/instance /tmp/metrics && chown -R upzento /app/instance /tmp/metrics

USER upzento
ENV UPZENTO_ENV=production PORT=8000 WEB_WORKERS=2
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${PORT}/health/live" >/dev/null || exit 1

# The web process; compose.yaml overrides the command for worker, scheduler, relay and migrate.
CMD ["sh", "-c", "exec gunicorn --config python:app.gunicorn_conf --no-control-socket --bind 0.0.0.0:${PORT} --workers ${WEB_WORKERS} --logger-class app.accesslog.RedactingLogger app.wsgi:application"]
