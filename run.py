"""Start Upzento Appointments: `python run.py`.

With DATABASE_URL and REDIS_URL set, it uses those servers. Without them it
starts an embedded PostgreSQL and a private redis-server whose data lives
under DATA_DIR (default ./instance). Then it migrates every schema, seeds the
demo agency once, starts an RQ worker (with the scheduler) and serves the app
with gunicorn. Ctrl-C (SIGINT) or SIGTERM stops everything it started.

`flask --app run.py ...` uses the same services: those of a running
`python run.py` (from DATA_DIR/runtime.json), else embedded ones it starts for
the length of the command.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from config import Config

DATA_DIR = Path(os.environ.get("DATA_DIR") or Config.DATA_DIR).resolve()
RUNTIME_FILE = DATA_DIR / "runtime.json"
_started: list = []


def _runtime_urls() -> dict | None:
    """URLs published by a running `python run.py`, if its process is still alive."""
    try:
        info = json.loads(RUNTIME_FILE.read_text())
        os.kill(info["pid"], 0)
        return info
    except (OSError, ValueError, KeyError):
        return None


def development_defaults() -> None:
    """The embedded default is a development set-up: UPZENTO_ENV=development and a random
    SECRET_KEY generated once and kept in DATA_DIR (so sessions survive restarts).

    With DATABASE_URL set nothing is assumed: UPZENTO_ENV, SECRET_KEY, CREDENTIALS_KEYS
    and PUBLIC_URL come from the environment, and the app refuses unsafe values.
    """
    os.environ.setdefault("UPZENTO_ENV", "development")
    if os.environ["UPZENTO_ENV"] != "development" or os.environ.get("SECRET_KEY"):
        return
    import secrets

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    os.environ["SECRET_KEY"] = key_file.read_text().strip()
    os.environ.setdefault("PUBLIC_URL", f"http://{Config.HOST}:{Config.PORT}")


def ensure_services(own: bool = False) -> None:
    """Fill DATABASE_URL/REDIS_URL, starting embedded servers for whatever is missing."""
    need_db = not os.environ.get("DATABASE_URL")
    need_redis = not os.environ.get("REDIS_URL")
    if not (need_db or need_redis):
        return
    if need_db:
        development_defaults()
    if not own:
        info = _runtime_urls()
        if info:
            os.environ.setdefault("DATABASE_URL", info["database_url"])
            os.environ.setdefault("REDIS_URL", info["redis_url"])
            return
    from devserver.embedded import EmbeddedPostgres, EmbeddedRedis

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if need_db:
        pg = EmbeddedPostgres(DATA_DIR)
        os.environ["DATABASE_URL"] = pg.start()
        _started.append(pg)
    if need_redis:
        redis_server = EmbeddedRedis(DATA_DIR)
        os.environ["REDIS_URL"] = redis_server.start()
        _started.append(redis_server)
    atexit.register(stop_services)


def stop_services() -> None:
    while _started:
        _started.pop().stop()


def create_app():
    """Factory for `flask --app run.py`."""
    ensure_services()
    from app import create_app as factory

    overrides = {"SQLALCHEMY_DATABASE_URI": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}
    # Config was read at import; the development defaults above may have come later.
    for name, key in (("UPZENTO_ENV", "ENV"), ("SECRET_KEY", "SECRET_KEY"), ("PUBLIC_URL", "PUBLIC_URL")):
        if os.environ.get(name):
            overrides[key] = os.environ[name]
    return factory(overrides)


SEED_MARKER = DATA_DIR / "demo-seeded"


def prepare(app) -> list[str]:
    """Migrate every schema and sync roles; seed the demo only into a fresh development data directory."""
    from sqlalchemy import text

    from app.extensions import db
    from app.security import sync_all_roles
    from app.settings_check import is_development
    from tenants.provisioning import migrate_all

    with app.app_context():
        with db.engine.connect() as conn:
            fresh = conn.execute(text("SELECT to_regclass('public.ab_user')")).scalar() is None or not (
                conn.execute(text("SELECT EXISTS (SELECT 1 FROM public.ab_user)")).scalar()
            )
        migrate_all(db.engine)
    sync_all_roles(app)
    if not is_development(app.config):
        return ["production settings: no demo data seeded"]
    if not fresh or SEED_MARKER.exists():
        return []
    from devserver.seed import seed_demo

    lines = seed_demo(app)
    SEED_MARKER.write_text("demo data seeded once into this data directory\n")
    return lines + ["seeded the demo agency and demo log-ins (published passwords: development only)"]


def main() -> int:
    from devserver.embedded import ManagedProcess

    ensure_services(own=True)
    app = create_app()
    for line in prepare(app):
        print(f"  {line}")
    with app.app_context():
        from app.extensions import db

        db.engine.dispose()  # the children open their own connections

    host, port = Config.HOST, Config.PORT
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)}
    (DATA_DIR / "log").mkdir(parents=True, exist_ok=True)
    # Every web and job process writes its metrics here; /metrics adds them up.
    metrics_dir = DATA_DIR / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    worker = ManagedProcess(
        "rq worker",
        [sys.executable, "-m", "rq.cli", "worker", "--with-scheduler", "-w", "app.jobs.worker.AppWorker",
         "--url", os.environ["REDIS_URL"], "notifications", "integrations", "default"],
        env=env,
        stop_signals=(signal.SIGTERM, signal.SIGTERM),
    )
    # Outbox relay (LISTEN/NOTIFY, relays on commit) and periodic jobs (reminders, sweeps, retention).
    relay = ManagedProcess("outbox relay", [sys.executable, "-m", "app.jobs.relay"], env=env)
    cron = ManagedProcess(
        "rq cron",
        [sys.executable, "-m", "rq.cli", "cron", "--url", os.environ["REDIS_URL"], "app/jobs/cron_config.py"],
        env=env, cwd=str(Path(__file__).resolve().parent),
    )
    web = ManagedProcess(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "--workers", str(Config.WEB_WORKERS), "--threads", str(Config.WEB_THREADS),
         "--bind", f"{host}:{port}", "--access-logfile", str(DATA_DIR / "log" / "access.log"),
         "--logger-class", "app.accesslog.RedactingLogger",
         "--config", "python:app.gunicorn_conf", "app.wsgi:application"],
        env=env,
    )
    children = [worker.start(), relay.start(), cron.start(), web.start()]
    RUNTIME_FILE.write_text(
        json.dumps({"pid": os.getpid(), "database_url": os.environ["DATABASE_URL"], "redis_url": os.environ["REDIS_URL"]})
    )
    base = f"http://{host}:{port}"
    from devserver.seed import demo_links

    print(
        f"\nUpzento Appointments is running.\n"
        f"  Admin:   {base}/login/"
        + ("   (demo log-ins: admin / admin-demo-1, owner / owner-demo-1, salon / salon-demo-1, mia / staff-demo-1)\n"
           if SEED_MARKER.exists() and app.config.get("ENV") == "development" else "\n")
        + f"  API:     {base}/api/v1/public/bella_salon/services   OpenAPI: {base}/api/v1/_openapi\n"
        + "".join(f"  {line}\n" for line in demo_links(app, base))
        + f"  Health:  {base}/health\n"
        f"Data in {DATA_DIR}. Press Ctrl-C to stop.\n",
        flush=True,
    )

    stop = threading.Event()

    def _on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stop.wait(1.0):
        dead = [c for c in children if not c.is_running()]
        if dead:
            print(f"{dead[0].name} exited with {dead[0].poll()}; stopping.", file=sys.stderr)
            break
    print("Stopping...", flush=True)
    for child in reversed(children):
        child.stop()
    RUNTIME_FILE.unlink(missing_ok=True)
    stop_services()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
