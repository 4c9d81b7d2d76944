"""Shared pieces of the benchmark scripts: a gunicorn server of the app on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_side_by_side(rows, columns: list[tuple[str, dict]]) -> None:
    """A table: one row per (label, figure-of-a-column -> text, target), one column per measured tree."""
    width = max(len(label) for label, _, _ in rows)
    print(f"{'':{width}}  " + "  ".join(f"{name:>22}" for name, _ in columns) + f"  {'target':>9}")
    for label, text_of, target in rows:
        print(f"{label:{width}}  " + "  ".join(f"{_figure(text_of, fig):>22}" for _, fig in columns) + f"  {target:>9}")


def _figure(text_of, figures: dict) -> str:
    """One cell; a column that did not measure this figure (a reference run of one load only) shows a dash."""
    try:
        return text_of(figures)
    except KeyError:
        return "-"


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A detached checkout of `revision` in a temporary folder (for a baseline measured side by side)."""
    folder = Path(tempfile.mkdtemp(prefix="upzento-baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision],
                   check=True, capture_output=True)
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], capture_output=True)


@contextlib.contextmanager
def gunicorn(database_url: str, redis_url: str, workers: int = 2, threads: int = 1, root: Path = ROOT,
             wsgi: str = "app.wsgi:application", env: dict | None = None) -> Iterator[str]:
    """Serve `wsgi` (of the checkout at `root`) with gunicorn on 127.0.0.1; yields the base URL once /health answers."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(root), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
           # Load generators send everything from one address: the per-IP API limits would answer 429.
           "RATELIMIT_ENABLED": "0", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--threads", str(threads),
         "--bind", f"127.0.0.1:{port}", wsgi],
        cwd=str(root), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {proc.returncode}")
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not become healthy within 60 s")
            time.sleep(0.25)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def tenant_schema(conn, slug: str) -> str:
    """The schema of tenant `slug` as stored on its row (a database made by an older commit: `tenant_<slug>`).

    `conn` is a SQLAlchemy connection or a psycopg connection.
    """
    from sqlalchemy import text

    has_column = "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'tenant' AND column_name = 'schema_name'"
    lookup = "SELECT schema_name FROM public.tenant WHERE slug = %(slug)s"
    if hasattr(conn, "exec_driver_sql"):
        if conn.execute(text(has_column)).scalar():
            return conn.execute(text(lookup.replace("%(slug)s", ":slug")), {"slug": slug}).scalar_one()
        return f"tenant_{slug}"
    if conn.execute(has_column).fetchone():
        return conn.execute(lookup, {"slug": slug}).fetchone()[0]
    return f"tenant_{slug}"
