"""Big appointment exports are long work of their business: an RQ job (in the business's turn)
builds the file, its owner downloads it chunk by chunk; a job killed with its worker leaves a
failed row saying so, not one "running" for ever; the same exports from the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import signal
import sys
import time
import zipfile
from pathlib import Path

from sqlalchemy import text

from test_dash_list import _rows, two_staff

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc


def _run_long_work(app) -> None:
    """Run the queued long work in this process, with a real RQ worker (burst)."""
    from rq.worker import SimpleWorker

    from app import fairqueue
    from app.queueing import queue

    with app.app_context():
        q = queue(fairqueue.QUEUE)
        SimpleWorker([q], connection=q.connection).work(burst=True)


def _export_rows(app, slug: str) -> list[dict]:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        schema = conn.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        found = conn.execute(text(f'SELECT * FROM "{schema}".export_file ORDER BY id'))
        return [dict(r._mapping) for r in found]


def _audited(app, slug: str) -> list[str]:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        schema = conn.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        return list(conn.execute(text(f"SELECT action FROM \"{schema}\".audit_log WHERE entity = 'export' ORDER BY id"))
                    .scalars())


def test_a_big_export_is_built_in_the_background_and_only_its_owner_downloads_it(
        app, client, make_tenant, make_user, login, put_appointments, long_work_redis, agency_business, monkeypatch):
    from app import fairqueue

    slug = make_tenant(two_staff())
    put_appointments(slug, _rows(3) + _rows(2, staff="bob", day=dt.datetime(2027, 5, 4, 8, 0, tzinfo=UTC)))
    owner = make_user("Client Admin", tenant=slug)
    login(client, owner)
    inline = client.get("/appointments/export.csv?staff=ann")  # 3 rows: under the default limit, streamed now
    assert inline.status_code == 200 and len(list(csv.reader(io.StringIO(inline.get_data(as_text=True))))) == 4

    monkeypatch.setitem(app.config, "EXPORT_INLINE_ROWS", 2)
    asked = client.get("/appointments/export.csv?staff=ann")
    assert asked.status_code == 302 and asked.headers["Location"].endswith("/appointments/exports/")
    assert client.get("/appointments/export.xlsx").status_code == 302
    [csv_row, xlsx_row] = _export_rows(app, slug)
    assert (csv_row["status"], csv_row["format"], csv_row["filters"]) == ("queued", "csv", {"staff": "ann"})
    with app.app_context():
        assert fairqueue.backlog(slug) == (1, 1)  # one turn in RQ, the second waits for it
    page = client.get("/appointments/exports/").get_data(as_text=True)
    assert "in the background" in page and "queued" in page and "/download" not in page

    _run_long_work(app)
    csv_row, xlsx_row = _export_rows(app, slug)
    assert (csv_row["status"], csv_row["rows"], csv_row["progress"]) == ("done", 3, 100)
    assert (xlsx_row["status"], xlsx_row["rows"]) == ("done", 5)
    assert csv_row["expires_at"] - csv_row["finished_at"] == dt.timedelta(hours=24)
    polled = client.get("/appointments/exports/?format=json").get_json()["exports"]
    assert [(e["id"], e["status"]) for e in polled] == [(xlsx_row["id"], "done"), (csv_row["id"], "done")]

    got = client.get(f"/appointments/exports/{csv_row['id']}/download")
    assert got.status_code == 200 and int(got.headers["Content-Length"]) == csv_row["size"] == len(got.data)
    assert got.data == inline.data  # the same file as the one streamed within a request
    book = client.get(f"/appointments/exports/{xlsx_row['id']}/download")
    sheet = zipfile.ZipFile(io.BytesIO(book.data)).read("xl/worksheets/sheet1.xml").decode()
    assert sheet.count("<row ") == 6 and "Bob" in sheet

    client.get("/logout/")
    login(client, make_user("Client Admin", tenant=slug))  # another admin of the same business
    theirs = client.get("/appointments/exports/").get_data(as_text=True)
    assert "No exports yet." in theirs and f"/exports/{csv_row['id']}/download" not in theirs
    refused = client.get(f"/appointments/exports/{csv_row['id']}/download")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/appointments/exports/")
    # Another agency's business asks for the same export id: its own schema has no such export of its user.
    client.get("/logout/")
    login(client, f"ca_{agency_business}")
    refused = client.get(f"/appointments/exports/{csv_row['id']}/download")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/appointments/exports/")
    assert "No exports yet." in client.get("/appointments/exports/").get_data(as_text=True)
    assert _audited(app, slug) == ["request", "request", "download", "download"]

    # Past its keeping time the file is refused, and the daily retention job deletes it.
    from app.extensions import db
    from app.jobs import periodic

    with app.app_context(), db.engine.begin() as conn:
        schema = conn.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        conn.execute(text(f'UPDATE "{schema}".export_file SET expires_at = now() - interval \'1 minute\' WHERE id = :i'),
                     {"i": csv_row["id"]})
    client.get("/logout/")
    login(client, owner)
    assert client.get(f"/appointments/exports/{csv_row['id']}/download").status_code == 302
    with app.app_context():
        periodic.retention()
        with db.engine.connect() as conn:
            assert conn.execute(text(f'SELECT count(*) FROM "{schema}".export_chunk WHERE export_id = :i'),
                                {"i": csv_row["id"]}).scalar() == 0
    assert [r["id"] for r in _export_rows(app, slug)] == [xlsx_row["id"]]


def test_an_export_whose_worker_is_killed_fails_saying_so_and_the_next_one_runs(
        app, make_tenant, put_appointments, long_work_redis, services):
    """A real `rq worker` takes the job and is killed (SIGKILL, with its work-horse) while the job
    waits on the export's row; the sweep lets RQ fail the abandoned job, marks the export failed
    with a message, frees the business's turn and queues its next export."""
    from devserver.embedded import ManagedProcess
    from rq.job import Job

    from app import fairqueue
    from app.extensions import db
    from app.queueing import redis_connection
    from app.services import appointment_list as al
    from app.services import exports
    from app.tenancy import tenant_session

    slug = make_tenant(two_staff())
    put_appointments(slug, _rows(2))
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, _ref):
            first, second = (exports.request(session, "csv", al.ListFilter(), "UTC", None, "test", dt.datetime.now(UTC)).id
                             for _ in range(2))
        job_id = fairqueue.submit(slug, exports.BUILD_JOB, first, on_lost=exports.LOST_JOB)
        fairqueue.submit(slug, exports.BUILD_JOB, second, on_lost=exports.LOST_JOB)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": services[0], "REDIS_URL": long_work_redis.url,
           "SECRET_KEY": app.config["SECRET_KEY"], "LONG_JOBS_PER_TENANT": "1"}
    worker = ManagedProcess("rq worker", [sys.executable, "-m", "rq.cli", "worker", "-w", "app.jobs.worker.AppWorker",
                                          "--url", long_work_redis.url, "default"],
                            env=env, cwd=str(ROOT), stop_signals=(signal.SIGKILL,), stop_timeout=1)
    with app.app_context(), db.engine.connect() as holder:
        tenant_schema = holder.execute(text("SELECT schema_name FROM public.tenant WHERE slug = :s"), {"s": slug}).scalar()
        holder.execute(text(f'SELECT id FROM "{tenant_schema}".export_file WHERE id = :i FOR UPDATE'), {"i": first})
        worker.start()
        try:
            deadline = time.monotonic() + 60
            while Job.fetch(job_id, connection=redis_connection()).get_status(refresh=True) != "started":
                assert time.monotonic() < deadline, "the worker never took the job"
                time.sleep(0.2)
            time.sleep(0.5)  # the work-horse is waiting for the row lock
        finally:
            worker.stop()  # SIGKILL to the worker and its work-horse: no error handling runs
        holder.rollback()

    rows = {r["id"]: r for r in _export_rows(app, slug)}
    assert rows[first]["status"] == "queued" and rows[second]["status"] == "queued"
    with app.app_context():
        assert fairqueue.sweep() == 0  # its heartbeat has not expired yet: not called lost
        assert fairqueue.sweep(now=time.time() + fairqueue.LOST_AFTER_SECONDS + 120) == 1
        assert Job.fetch(job_id, connection=redis_connection()).get_status(refresh=True) == "failed"
        assert fairqueue.backlog(slug) == (0, 1)  # the second export has the turn now
    rows = {r["id"]: r for r in _export_rows(app, slug)}
    assert rows[first]["status"] == "failed" and rows[first]["error"] == exports.LOST_MESSAGE
    _run_long_work(app)
    assert {r["id"]: r["status"] for r in _export_rows(app, slug)} == {first: "failed", second: "done"}


def test_an_export_that_cannot_be_queued_fails_at_once(app, client, make_tenant, make_user, login, put_appointments,
                                                        monkeypatch):
    slug = make_tenant(two_staff())
    put_appointments(slug, _rows(3))
    login(client, make_user("Client Admin", tenant=slug))
    monkeypatch.setitem(app.config, "EXPORT_INLINE_ROWS", 1)
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    asked = client.get("/appointments/export.csv", follow_redirects=True)
    assert "could not be queued" in asked.get_data(as_text=True)
    [row] = _export_rows(app, slug)
    assert row["status"] == "failed" and "unreachable" in row["error"]


def test_exports_from_the_command_line(app, make_tenant, put_appointments, long_work_redis, tmp_path):
    import json

    def cli(app, *args):
        return app.test_cli_runner().invoke(args=[str(a) for a in args])

    slug = make_tenant(two_staff())
    put_appointments(slug, _rows(3) + _rows(2, staff="bob", day=dt.datetime(2027, 5, 4, 8, 0, tzinfo=UTC)))
    now = tmp_path / "now.csv"
    done = cli(app, "exports", "appointments", slug, "--staff", "ann", "--out", now)
    assert done.exit_code == 0, done.output
    table = list(csv.reader(io.StringIO(now.read_text())))
    assert len(table) == 4 and {row[6] for row in table[1:]} == {"Ann"}

    queued = cli(app, "exports", "appointments", slug, "--format", "xlsx", "--background")
    assert queued.exit_code == 0, queued.output
    export_id = json.loads(queued.output)["export"]
    not_yet = cli(app, "exports", "download", slug, export_id, "--out", tmp_path / "x.xlsx")
    assert not_yet.exit_code != 0 and "not ready" in not_yet.output
    _run_long_work(app)
    [listed] = [json.loads(line) for line in cli(app, "exports", "list", slug).output.splitlines()]
    assert (listed["export"], listed["status"], listed["rows"], listed["format"]) == (export_id, "done", 5, "xlsx")
    got = cli(app, "exports", "download", slug, export_id, "--out", tmp_path / "x.xlsx")
    assert got.exit_code == 0, got.output
    assert (tmp_path / "x.xlsx").stat().st_size == listed["size"]

    for args, message in (
            (("appointments", slug), "either --out"),
            (("appointments", slug, "--out", tmp_path / "a.csv", "--background"), "either --out"),
            (("appointments", slug, "--from", "May 3", "--out", tmp_path / "a.csv"), "--from"),
            (("appointments", slug, "--timezone", "Mars/Olympus", "--out", tmp_path / "a.csv"), "unknown time zone"),
            (("appointments", "no-such-business", "--out", tmp_path / "a.csv"), "unknown tenant"),
            (("download", slug, "999999", "--out", tmp_path / "a.csv"), "no such export")):
        refused = cli(app, "exports", *args)
        assert refused.exit_code != 0 and message in refused.output, (args, refused.output)
    assert not (tmp_path / "a.csv").exists()


def test_erasing_a_person_deletes_the_export_files_that_may_hold_them(app, make_tenant):
    from app.extensions import db
    from app.gdpr import subjects
    from app.models import tenant as m
    from app.services import appointment_list as al
    from app.services import exports
    from app.tenancy import tenant_session

    slug = make_tenant(two_staff())
    now = dt.datetime.now(UTC)
    with app.app_context():
        with tenant_session(db.engine, slug) as (session, _ref):
            eve = m.Customer(name="Eve Example", email="eve@example.com")
            session.add(eve)
            export_id = exports.request(session, "csv", al.ListFilter(), "UTC", None, "test", now).id
            exports.start(session, export_id, now)
            exports.store_file(session, export_id, io.BytesIO(b"id,customer\n1,Eve Example\n"), 1, now,
                               exports.Limits())
        assert [r["status"] for r in _export_rows(app, slug)] == ["done"]
        with tenant_session(db.engine, slug) as (session, ref):
            eve = session.query(m.Customer).filter_by(email="eve@example.com").one()
            counts = subjects.erase_customer(session, ref, eve, "test")
    assert counts["export_file"] == 1 and _export_rows(app, slug) == []
