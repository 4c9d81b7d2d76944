"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application` (needs DATABASE_URL, REDIS_URL)."""

from app import create_app
from app.runtime_gc import freeze_startup_heap

application = create_app()
freeze_startup_heap()
