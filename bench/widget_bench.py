"""Widget benchmarks: loader size, bytes before the first slots, page load → first slots in headless Chromium.

    python bench/widget_bench.py [--runs 20] [--baseline REV]

Uses DATABASE_URL/REDIS_URL when set (a fresh database is created on that
server), else embedded servers in a temporary folder. The app runs under
gunicorn (2 workers); a host page on another loopback port embeds the loader
with a preselected service and "anyone" as staff, so the first slots are the first thing shown.
Each run uses a fresh browser context (cold cache). With --baseline REV a
checkout of REV is served from the same database and measured first, and the
main figures print side by side. Prints, next to targets:
- loader.js gzipped (≤ 5 KB)
- bytes transferred by the iframe before the first slots (≤ 30 KB), and with the loader
- host page navigation start → first slots rendered, p50 / p95 (p50 ≤ 150 ms)
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Benches run the development settings (no production secrets needed).
os.environ.setdefault("UPZENTO_ENV", "development")

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.support import gunicorn, print_side_by_side, worktree  # noqa: E402
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def setup_doc(slug: str) -> dict:
    return {
        "version": 1,
        "tenant": {"slug": slug, "name": "Bench Salon", "timezone": "Europe/Berlin", "currency": "EUR"},
        "locations": [{"key": "main", "name": "Main", "timezone": "Europe/Berlin"}],
        "services": [{"key": "cut", "name": "Haircut", "duration_min": 30, "price": "35.00"},
                     {"key": "color", "name": "Colour", "duration_min": 90, "price": "80.00"}],
        "staff": [
            {"key": f"s{i}", "name": f"Stylist {i}", "services": ["cut", "color"], "locations": ["main"],
             "hours": [{"location": "main", "weekday": d, "start": "08:00", "end": "20:00"} for d in WEEKDAYS]}
            for i in range(5)
        ],
    }


def host_server(page: str) -> tuple[ThreadingHTTPServer, str]:
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


MEASURE = """() => {
  const f = document.querySelector('iframe.upzw-frame');
  return {origin: performance.timeOrigin,
          loader: performance.getEntriesByType('resource').filter(e => e.name.includes('loader.js')).map(e => e.transferSize)[0] || 0};
}"""
IN_FRAME = """() => {
  const parts = performance.getEntriesByType('resource').map(e => [e.name.split('/').pop().slice(0, 40), Math.round(e.startTime), Math.round(e.responseEnd), e.transferSize]);
  const mark = performance.getEntriesByName('upz-first-slots')[0];
  const js = performance.getEntriesByName('upz-js-start')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const before = performance.getEntriesByType('resource').filter(e => e.responseEnd <= mark.startTime)
                   .reduce((n, e) => n + e.transferSize, 0);
  return {origin: performance.timeOrigin, mark: mark.startTime, bytes: before + nav.transferSize, parts: parts, own: mark.startTime,
          nav: [Math.round(nav.requestStart), Math.round(nav.responseEnd), nav.transferSize, Math.round(js.startTime)]};
}"""


def measure(browser, url: str, context=None) -> dict:
    """One page load; a fresh context (cold cache) unless one is passed (warm: a returning visitor)."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    try:
        page = context.new_page()
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        page.goto(url)
        frame_el = page.wait_for_selector("iframe.upzw-frame")
        frame = frame_el.content_frame()
        try:
            frame.wait_for_selector("button.upz-slot", timeout=15000)
            frame.wait_for_function("performance.getEntriesByName('upz-first-slots').length > 0")
        except Exception:
            print("no slots appeared; console:", console, "frame:", frame.url, frame.content()[-2500:], file=sys.stderr)
            raise
        host = page.evaluate(MEASURE)
        inner = frame.evaluate(IN_FRAME)
        if os.environ.get("WIDGET_BENCH_DEBUG"):
            print(round(inner["origin"] - host["origin"]), inner["nav"], inner["parts"], round(inner["mark"]), file=sys.stderr)
        return {"ms": inner["origin"] + inner["mark"] - host["origin"], "frame_ms": inner["own"], "bytes": inner["bytes"],
                "loader": host["loader"]}
    finally:
        if own:
            context.close()
        else:
            page.close()


def summary(results: list[dict]) -> tuple[float, float, float]:
    times = sorted(r["ms"] for r in results)
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))], times[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline", metavar="REV", help="also measure this git revision, side by side in the same run")
    args = parser.parse_args()
    loader_raw = (ROOT / "app/widget/static/loader.js").read_bytes()
    print(f"loader.js: {len(loader_raw)} B raw, {len(gzip.compress(loader_raw, 9))} B gzipped (target ≤ 5120 B)")

    from devserver.embedded import scratch_environment

    with scratch_environment("upzento_wbench") as (db_url, redis_url):
        return run(args, db_url, redis_url)


def run(args, db_url: str, redis_url: str) -> int:
    """Fill the scratch database, serve it with gunicorn, then measure in headless Chromium."""
    os.environ.update(DATABASE_URL=db_url, REDIS_URL=redis_url)
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
        import_setup(db.engine, setup_doc("wbench"), "bench")
        with tenant_session(db.engine, "wbench") as (session, _):
            widget = w.Widget(name="Bench", allowed_origins=[], hidden_fields=[], show_staff_step=False)
            session.add(widget)
            session.flush()
            public_id = widget.public_id
        db.engine.dispose()

    columns = []
    if args.baseline:
        with worktree(args.baseline) as tree, gunicorn(db_url, redis_url, workers=2, threads=4, root=tree) as base:
            print(f"== baseline {args.baseline}")
            columns.append((f"baseline {args.baseline[:12]}", measure_all(args, app, public_id, base)))
        print("== this tree")
    with gunicorn(db_url, redis_url, workers=2, threads=4) as base:
        columns.append(("this tree", measure_all(args, app, public_id, base)))
    if len(columns) > 1:
        print_side_by_side(ROWS, columns)
    return 0


# label, the figure's text from one column, target (the main figures, for --baseline)
ROWS = [
    ("page load → first slots, cold p50 ms", lambda f: f"{f['cold_p50']:.0f}", "<= 150"),
    ("  cold p95 ms", lambda f: f"{f['cold_p95']:.0f}", ""),
    ("page load → first slots, warm p50 ms", lambda f: f"{f['warm_p50']:.0f}", ""),
    ("iframe navigation → first slots, cold p50 ms", lambda f: f"{f['frame_p50']:.0f}", ""),
    ("iframe bytes before first slots", lambda f: f"{f['frame_bytes']:.0f}", "<= 30720"),
    ("loader.js on the wire, bytes", lambda f: str(f["loader_wire"]), "<= 5120"),
    ("frame page, server only, p50 ms", lambda f: f"{f['server_p50']:.0f}", ""),
]


def measure_all(args, app, public_id: str, base: str) -> dict:
    """Print every figure of the widget benchmark against the running server; also return them."""
    from app.extensions import db
    from app.models import widgets as w
    from app.tenancy import tenant_session

    served = requests.get(f"{base}/widget/v1/loader.js", headers={"Accept-Encoding": "gzip"}, stream=True)
    loader_wire = len(served.raw.read())
    print(f"loader.js served: Content-Encoding {served.headers.get('Content-Encoding')}, {loader_wire} B on the wire")

    frame_url = f"{base}/widget/v1/wbench/{public_id}/frame?service=cut"
    server = []
    with requests.Session() as http:
        for _ in range(20):
            t = time.perf_counter()
            http.get(frame_url, headers={"Accept-Encoding": "gzip"}).raise_for_status()
            server.append((time.perf_counter() - t) * 1000)
    print(f"frame page with the first week of slots, server only: p50 {statistics.median(server):.1f} ms")
    page_html = (f'<!doctype html><html><head><title>Host</title></head><body><h1>Bench host</h1>'
                 f'<div data-upzento-tenant="wbench" data-upzento-widget="{public_id}" data-service="cut"></div>'
                 f'<script src="{base}/widget/v1/loader.js"></script></body></html>')
    host, host_origin = host_server(page_html)
    try:
        figures = browser_figures(args, app, host_origin)
    finally:
        host.shutdown()
        host.server_close()
    return {**figures, "loader_wire": loader_wire, "server_p50": statistics.median(server)}


def browser_figures(args, app, host_origin: str) -> dict:
    """Time page load → first slots in headless Chromium, cold and warm."""
    from playwright.sync_api import sync_playwright

    from app.extensions import db
    from app.models import widgets as w
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, "wbench") as (session, _):
        session.query(w.Widget).update({"allowed_origins": [host_origin]})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(2):  # warm the workers (imports, pools), not counted
            measure(browser, host_origin + "/")
        results = [measure(browser, host_origin + "/") for _ in range(args.runs)]
        warm_context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
        measure(browser, host_origin + "/", warm_context)
        warm = [measure(browser, host_origin + "/", warm_context) for _ in range(args.runs)]
        warm_context.close()
        browser.close()
    p50, p95, fastest = summary(results)
    w50, w95, wfastest = summary(warm)
    frame_bytes = statistics.median(r["bytes"] for r in results)
    loader_bytes = statistics.median(r["loader"] for r in results)
    print(f"iframe bytes before first slots: {frame_bytes:.0f} B (target ≤ 30720 B); with loader: {frame_bytes + loader_bytes:.0f} B")
    print(f"page load → first slots, cold cache ({args.runs} runs): p50 {p50:.0f} ms, p95 {p95:.0f} ms, min {fastest:.0f} ms (target p50 ≤ 150 ms)")
    print(f"page load → first slots, warm cache ({args.runs} runs): p50 {w50:.0f} ms, p95 {w95:.0f} ms, min {wfastest:.0f} ms")
    print(f"iframe navigation → first slots, cold: p50 {statistics.median(r['frame_ms'] for r in results):.0f} ms")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work on the machine inflates the times)")
    return {"cold_p50": p50, "cold_p95": p95, "warm_p50": w50, "frame_bytes": frame_bytes,
            "frame_p50": statistics.median(r["frame_ms"] for r in results)}


if __name__ == "__main__":
    sys.exit(main())
