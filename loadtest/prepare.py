"""Make the businesses the Locust scenario visits, with an admin and an API key each.

    DATABASE_URL=... python loadtest/prepare.py --tenants 100 [--prefix t] [--out loadtest/credentials.json]

Businesses `<prefix>0000` ... (one location, the 30-minute service `visit`, two staff
members working every day 08:00-20:00 Berlin time) are created through the real importer
(`import_setup`) unless they exist already; each gets a Client Admin `lt_<slug>` (password
LOADTEST_PASSWORD, default `loadtest-password-1`) and a new read-write API key. The keys'
secrets are shown once, so they are written to --out (JSON, mode 0600) for the locustfile
(LOADTEST_CREDENTIALS). Rerunning adds a fresh key per business and keeps the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("UPZENTO_ENV", "development")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AGENCY = "loadtest"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def setup_doc(slug: str) -> dict:
    hours = [{"location": "main", "weekday": d, "start": "08:00", "end": "20:00"} for d in DAYS]
    return {
        "version": 1,
        "tenant": {"slug": slug, "name": f"Load test {slug}", "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": "Main", "timezone": "Europe/Berlin"}],
        "services": [{"key": "visit", "name": "Visit", "duration_min": 30}],
        "staff": [{"key": key, "name": key.title(), "services": ["visit"], "locations": ["main"], "hours": hours}
                  for key in ("ann", "bob")],
    }


def prepare(app, count: int, prefix: str = "t", password: str | None = None) -> dict[str, dict]:
    """Create (or reuse) `count` businesses with an admin and a fresh API key in `app`'s database;
    returns {slug: credentials}."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Agency, Tenant
    from app.services.people import create_api_key, create_user_with_role
    from app.services.setup_io import import_setup
    from tenants.provisioning import create_agency

    password = password or os.environ.get("LOADTEST_PASSWORD", "loadtest-password-1")
    out: dict[str, dict] = {}
    with app.app_context():
        if db.session.scalar(select(Agency).where(Agency.slug == AGENCY)) is None:
            create_agency(db.session, AGENCY, "Load test agency")
            db.session.commit()
        for i in range(count):
            slug = f"{prefix}{i:04d}"
            if db.session.scalar(select(Tenant).where(Tenant.slug == slug)) is None:
                import_setup(db.engine, setup_doc(slug), AGENCY)
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            username = f"lt_{slug}"
            if app.appbuilder.sm.find_user(username=username) is None:
                create_user_with_role(db.session, username=username, email=f"{username}@loadtest.invalid",
                                      password=password, role="Client Admin", tenant_slug=slug)
            _, secret = create_api_key(db.session, tenant, f"load test {time.strftime('%Y-%m-%d %H:%M')}")
            db.session.commit()
            out[slug] = {"admin": username, "password": password, "api_key": secret}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--prefix", default="t")
    parser.add_argument("--out", default=str(ROOT / "loadtest" / "credentials.json"))
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        print("DATABASE_URL (or --database-url) is required", file=sys.stderr)
        return 2
    from app import create_app
    from app.extensions import db
    from app.security import sync_all_roles
    from config import database_url
    from tenants.provisioning import migrate_all

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url(args.database_url)})
    with app.app_context():
        migrate_all(db.engine)
        sync_all_roles(app)
    creds = prepare(app, args.tenants, args.prefix)
    path = Path(args.out)
    path.write_text(json.dumps(creds, indent=1))
    path.chmod(0o600)
    print(f"{len(creds)} businesses ready; credentials in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
