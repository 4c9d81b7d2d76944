"""Plain helpers of the widget tests (import as `from widget_support import ...`)."""

from __future__ import annotations

from support import ROOT, minimal_setup

NOW = "2027-01-01T00:00:00Z"
# NOW is Friday 2027-01-01 00:00 UTC; minimal_setup works Mon-Fri 09:00-17:00 Berlin.
MONDAY_9 = "2027-01-04T08:00:00Z"


def widget_setup() -> dict:
    """minimal_setup plus a price and a group class of 5 seats (policy windows and recurrence are set after import)."""
    doc = minimal_setup()
    doc["services"][0]["price"] = "40.00"
    doc["services"].append({"key": "class", "name": "Group class", "duration_min": 60, "capacity": 5})
    doc["staff"][0]["services"] = ["visit", "class"]
    return doc


def tenant_rows(app, slug: str, sql: str, **params):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        conn.exec_driver_sql(f'SET search_path TO "tenant_{slug}", public')
        return conn.execute(text(sql), params).all()


ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
