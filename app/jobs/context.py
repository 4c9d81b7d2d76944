"""The Flask app inside RQ worker processes (built once per process, from the environment)."""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, current_app, has_app_context


@lru_cache(maxsize=1)
def _build() -> Flask:
    from app import create_app

    return create_app()


def job_app() -> Flask:
    """The current app when called inside one (tests), else this worker's own app."""
    if has_app_context():
        return current_app._get_current_object()
    return _build()
