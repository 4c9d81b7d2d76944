"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application` (needs DATABASE_URL, REDIS_URL)."""

from app import create_app

application = create_app()
