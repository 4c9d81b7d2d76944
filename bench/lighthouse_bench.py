"""Lighthouse (mobile preset) on the admin sign-in page and the widget frame: the four category scores
per page beside the targets of the accessibility-and-weight issue.

    python bench/lighthouse_bench.py [--baseline REV] [--runs N]

Needs Node.js and Debian's chromium (CHROME_PATH, default /usr/bin/chromium). Lighthouse is taken
from PATH or from LIGHTHOUSE_DIR; if absent it is installed with npm into a cache folder
(~/.cache/upzento-lighthouse), never into the project. Servers: an embedded PostgreSQL and Redis,
the app under gunicorn (2 workers), as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import gunicorn, print_side_by_side, worktree  # noqa: E402
from bench.widget_bench import setup_doc  # noqa: E402

LIGHTHOUSE_VERSION = "12.8.2"
CHROME = os.environ.get("CHROME_PATH", "/usr/bin/chromium")
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
# page -> category -> target (None: reported, no target in the issue)
TARGETS = {
    "admin /login/": {"performance": 90, "accessibility": 95, "best-practices": None, "seo": None},
    "widget frame": {"performance": None, "accessibility": 95, "best-practices": None, "seo": None},
}


def lighthouse_bin() -> list[str]:
    found = shutil.which("lighthouse")
    if found:
        return [found]
    folder = Path(os.environ.get("LIGHTHOUSE_DIR", Path.home() / ".cache" / "upzento-lighthouse"))
    cli = folder / "node_modules" / "lighthouse" / "cli" / "index.js"
    if not cli.exists():
        folder.mkdir(parents=True, exist_ok=True)
        print(f"installing lighthouse {LIGHTHOUSE_VERSION} with npm into {folder} ...", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), f"lighthouse@{LIGHTHOUSE_VERSION}"],
                       check=True, stdout=subprocess.DEVNULL)
    return ["node", str(cli)]


def run_lighthouse(cmd: list[str], url: str) -> dict[str, float]:
    """One Lighthouse run (mobile form factor and simulated throttling, its defaults); category -> score 0-100."""
    with tempfile.TemporaryDirectory(prefix="upzento-lh-") as tmp:
        out = Path(tmp) / "report.json"
        subprocess.run(
            [*cmd, url, "--quiet", "--output=json", f"--output-path={out}", f"--chrome-path={CHROME}",
             "--chrome-flags=--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage",
             f"--only-categories={','.join(CATEGORIES)}"],
            check=True, env={**os.environ, "CHROME_PATH": CHROME}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        report = json.loads(out.read_text())
    scores = {c: round(100 * (report["categories"][c]["score"] or 0)) for c in CATEGORIES}
    audits = report["audits"]
    scores["fcp_ms"] = audits["first-contentful-paint"]["numericValue"]
    scores["lcp_ms"] = audits["largest-contentful-paint"]["numericValue"]
    scores["bytes"] = audits["total-byte-weight"]["numericValue"]
    scores["blocking"] = len(audits.get("render-blocking-resources", {}).get("details", {}).get("items", []) or [])
    return scores


def measure(cmd, urls: dict[str, str], runs: int) -> dict:
    figures = {}
    for page, url in urls.items():
        results = [run_lighthouse(cmd, url) for _ in range(runs)]
        median = {k: statistics.median(r[k] for r in results) for k in results[0]}
        figures[page] = median
        print(f"{page}: " + ", ".join(f"{c} {median[c]:.0f}" for c in CATEGORIES)
              + f" | first paint {median['fcp_ms']:.0f} ms, LCP {median['lcp_ms']:.0f} ms, "
                f"{median['bytes'] / 1024:.0f} KiB, {median['blocking']:.0f} render-blocking", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="Lighthouse runs per page (the median is shown)")
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision, side by side")
    args = parser.parse_args()
    cmd = lighthouse_bin()
    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_lhbench") as (db_url, redis_url):
        os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
        public_id = prepare(db_url, redis_url)
        columns = []
        if args.baseline:
            with worktree(args.baseline) as tree, gunicorn(db_url, redis_url, workers=2, threads=4, root=tree) as base:
                print(f"== baseline {args.baseline}")
                columns.append((f"baseline {args.baseline[:12]}", measure(cmd, urls(base, public_id), args.runs)))
        print("== this tree")
        with gunicorn(db_url, redis_url, workers=2, threads=4) as base:
            columns.append(("this tree", measure(cmd, urls(base, public_id), args.runs)))
    rows = []
    for page, targets in TARGETS.items():
        for c in CATEGORIES:
            target = targets[c]
            rows.append((f"{page} {c}", lambda f, p=page, c=c: f"{f[p][c]:.0f}", f">= {target}" if target else ""))
    print()
    print_side_by_side(rows, columns)
    return 0


def urls(base: str, public_id: str) -> dict[str, str]:
    return {"admin /login/": f"{base}/login/", "widget frame": f"{base}/widget/v1/lhbench/{public_id}/frame"}


def prepare(db_url: str, redis_url: str) -> str:
    from app import create_app
    from app.extensions import db
    from app.models import widgets as w
    from app.services.setup_io import import_setup
    from app.tenancy import tenant_session
    from tenants.provisioning import create_agency, migrate_all

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url})
    with app.app_context():
        migrate_all(db.engine)
        create_agency(db.session, "bench", "Bench")
        db.session.commit()
        import_setup(db.engine, setup_doc("lhbench"), "bench")
        with tenant_session(db.engine, "lhbench") as (session, _):
            widget = w.Widget(name="Bench", allowed_origins=[], hidden_fields=[], show_staff_step=False)
            session.add(widget)
            session.flush()
            public_id = widget.public_id
        db.engine.dispose()
    return public_id


if __name__ == "__main__":
    raise SystemExit(main())
