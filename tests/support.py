"""Plain helpers for tests (import as `from support import ...`)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Test data lives in the repository (copies of the product's shared worked cases and
# setup schema), so a plain clone runs every test.
DATA = Path(__file__).resolve().parent / "data"
SCENARIO_DIR = DATA / "scenarios"
SETUP_SCHEMA = DATA / "tenant-setup.schema.json"
SCENARIOS = sorted(SCENARIO_DIR.glob("*.json"))


def external_scenarios() -> list[Path]:
    """Optional extra cases from the folder named by SCENARIOS_DIR (none when unset or absent)."""
    import os

    folder = os.environ.get("SCENARIOS_DIR")
    if not folder or not Path(folder).is_dir():
        return []
    return sorted(Path(folder).glob("*.json"))


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def minimal_setup() -> dict:
    """One location, one 30-min service, one staff member working Mon-Fri 09:00-17:00 (Berlin)."""
    return {
        "version": 1,
        "tenant": {"slug": "mini", "name": "Mini", "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": "Main", "timezone": "Europe/Berlin"}],
        "services": [{"key": "visit", "name": "Visit", "duration_min": 30}],
        "staff": [
            {
                "key": "ann",
                "name": "Ann",
                "services": ["visit"],
                "locations": ["main"],
                "hours": [{"location": "main", "weekday": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")],
            }
        ],
    }


def load_scenario(path: Path) -> dict:
    return json.loads(path.read_text())


def next_weekday(weekday: int, weeks_ahead: int = 1, base: dt.date | None = None) -> dt.date:
    base = base or dt.date.today()
    days = (weekday - base.weekday()) % 7 or 7
    return base + dt.timedelta(days=days + 7 * (weeks_ahead - 1))


def deadlock_on_staff_lock(monkeypatch, times: int) -> list[int]:
    """Make the next `times` staff locks fail as PostgreSQL reports a deadlock (40P01)."""
    import psycopg.errors
    from sqlalchemy.exc import OperationalError

    from app.services import booking

    real = booking.lock_staff
    calls: list[int] = []

    def lock(session, tenant, staff_ids):
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("SELECT pg_advisory_xact_lock(...)", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
        return real(session, tenant, staff_ids)

    monkeypatch.setattr(booking, "lock_staff", lock)
    return calls
