"""The production topology on one machine, from Debian's packages, on loopback ports.

    PostgreSQL primary ──streaming (synchronous)──> replica   (+ an optional spare standby)
          ^                                          ^
    PgBouncer (transaction mode)                      └── DATABASE_REPLICA_URL (availability, dashboards)
          ^
    web nodes (gunicorn) <── HAProxy (/health/ready checks, retry on connection failure)
          |
    Redis primary ──> Redis replica, watched by 3 redis-sentinel; RQ workers and the outbox relay

Everything runs in one temporary folder; PostgreSQL and PgBouncer run as the `postgres`
OS user when this runs as root (neither starts as root). `Topology` is what the
topology tests and bench/topology_bench.py use; `python -m ops.topology up` starts it by
hand and prints the URLs (Ctrl-C stops it).

Parts: initdb / pg_ctl / pg_basebackup from /usr/lib/postgresql/15/bin (PG_BIN to
override), `pgbouncer`, `haproxy`, `redis-server`, `redis-sentinel` (apt-get install
postgresql-15 pgbouncer haproxy redis-server redis-sentinel). The servers run with
fsync off: the faults injected are process deaths, not power losses, and the machine is
shared; acknowledged commits are protected by the synchronous standby, not by fsync.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("upzento.topology")
ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_NAME = "upzento"
SENTINEL_MASTER = "upzento"
TENANT = "topo"
AGENCY = "ops"
# A business open around the clock in UTC: 6 staff, 15-minute visits, so load tests find free slots.
STAFF = [f"s{i}" for i in range(6)]
SETUP = {
    "version": 1,
    "tenant": {"slug": TENANT, "name": "Topology", "timezone": "UTC", "currency": "EUR"},
    "locations": [{"key": "main", "name": "Main", "timezone": "UTC"}],
    "services": [{"key": "visit", "name": "Visit", "duration_min": 15}],
    "staff": [
        {"key": key, "name": key.upper(), "services": ["visit"], "locations": ["main"],
         "hours": [{"location": "main", "weekday": d, "start": "00:00", "end": "23:59"}
                   for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]}
        for key in STAFF
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` is truthy; its value, or TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling; report the last error
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def http_status(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _as_postgres() -> dict:
    """Popen arguments that drop to the postgres user when running as root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        shutil.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class Proc:
    """A process this topology started (own session, so a node's children die with it)."""

    name: str
    argv: list[str]
    env: dict
    log_path: Path
    popen: subprocess.Popen | None = None
    as_postgres: bool = False

    def start(self) -> "Proc":
        out = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, env=self.env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True,
                                      **(_as_postgres() if self.as_postgres else {}))
        out.close()
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a gunicorn master and its workers)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(5)
        # Children that outlived their parent (same process group).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class PgServer:
    """One PostgreSQL 15 cluster (primary or standby) controlled with pg_ctl."""

    def __init__(self, base: Path, name: str, port: int):
        self.name, self.port = name, port
        self.dir = base / name
        self.sock = base / f"{name}-sock"
        self.log = base / f"{name}.log"

    def _run(self, *argv: str, timeout: float = 120) -> str:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                              cwd="/", **_as_postgres())
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def _prepare_dirs(self) -> None:
        self.sock.mkdir(exist_ok=True)
        _chown_postgres(self.sock)
        self.log.touch()
        _chown_postgres(self.log)

    def init_primary(self) -> None:
        self._prepare_dirs()
        self.dir.mkdir()
        _chown_postgres(self.dir)
        self._run(PG_BIN / "initdb", "-D", self.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--locale=C.UTF-8")
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(self._settings())
        with open(self.dir / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")

    def _settings(self) -> str:
        return "\n".join([
            "", "# ops/topology.py",
            f"port = {self.port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{self.sock}'",
            "wal_level = replica", "max_wal_senders = 10", "max_replication_slots = 10", "hot_standby = on",
            "hot_standby_feedback = on", "wal_keep_size = '256MB'", "max_connections = 200",
            "fsync = off", "full_page_writes = off", "shared_buffers = '64MB'", "wal_receiver_status_interval = 1",
            "wal_retrieve_retry_interval = 1000", "", ""])

    def init_standby(self, primary: "PgServer", application_name: str) -> None:
        self._prepare_dirs()
        self.dir.mkdir(mode=0o700)
        _chown_postgres(self.dir)
        self._run(PG_BIN / "pg_basebackup", "-D", self.dir, "-R", "-X", "stream", "--no-sync", "-c", "fast",
                  "-d", f"host=127.0.0.1 port={primary.port} user=postgres application_name={application_name}")
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nunix_socket_directories = '{self.sock}'\n")

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.dir, "-l", self.log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.dir / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run(PG_BIN / "pg_ctl", "-D", self.dir, "-m", mode, "-w", "-t", "30", "stop")

    def promote(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", self.dir, "-w", "-t", "60", "promote")

    def running(self) -> bool:
        return (self.dir / "postmaster.pid").exists()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"

    def sql(self, statement: str, db: str = DB_NAME, autocommit: bool = True):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=autocommit,
                             connect_timeout=3) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else None


class PgBouncer:
    """PgBouncer in transaction mode in front of the current primary; retarget() after a failover."""

    def __init__(self, base: Path, port: int, target_port: int, env: dict):
        self.port, self.target_port = port, target_port
        self.dir = base / "pgbouncer"
        self.dir.mkdir()
        _chown_postgres(self.dir)
        self.ini = self.dir / "pgbouncer.ini"
        self.proc = Proc("pgbouncer", ["pgbouncer", str(self.ini)], env, self.dir / "pgbouncer.log", as_postgres=True)

    def _write(self) -> None:
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        self.ini.write_text("\n".join([
            "[databases]",
            f"{DB_NAME} = host=127.0.0.1 port={self.target_port} dbname={DB_NAME}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {self.port}", f"unix_socket_dir = {self.dir}",
            "auth_type = trust", f"auth_file = {self.dir / 'users.txt'}", "admin_users = postgres",
            "pool_mode = transaction", "max_client_conn = 500", "default_pool_size = 20", "reserve_pool_size = 5",
            "server_connect_timeout = 2", "server_login_retry = 1", "query_wait_timeout = 30",
            "server_reset_query =", "ignore_startup_parameters = extra_float_digits,options",
            "", ""]))
        for path in self.dir.iterdir():
            _chown_postgres(path)

    def start(self) -> None:
        self._write()
        self.proc.start()
        wait_for(lambda: self._admin("SHOW VERSION") is not None, 15, "pgbouncer")

    def _admin(self, command: str):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="pgbouncer", autocommit=True,
                             cursor_factory=psycopg.ClientCursor, connect_timeout=2) as conn:
            cur = conn.execute(command)
            return cur.fetchall() if cur.description else True

    def retarget(self, port: int) -> None:
        """Point the pool at another server: rewrite the ini, RELOAD, and drop server connections to the old one."""
        self.target_port = port
        self._write()
        self._admin("RELOAD")
        with contextlib.suppress(Exception):
            self._admin(f"RECONNECT {DB_NAME}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"


@dataclass
class Topology:
    """Start with `with Topology(web_nodes=2) as topo:`; see the module docstring for the parts."""

    web_nodes: int = 2
    workers: int = 1
    replica: bool = True
    spare: bool = False
    pgbouncer: bool = True
    sentinel: bool = True
    relay: bool = True
    web_workers: int = 1
    web_threads: int = 4
    extra_env: dict = field(default_factory=dict)
    base: Path | None = None

    def __post_init__(self):
        self.procs: list[Proc] = []
        self.webs: list[Proc] = []
        self.web_ports: list[int] = []
        self.rq_workers: list[Proc] = []
        self.relay_proc: Proc | None = None
        self.pg_primary: PgServer | None = None
        self.pg_replica: PgServer | None = None
        self.pg_spare: PgServer | None = None
        self.bouncer: PgBouncer | None = None
        self.redis: dict[str, Proc] = {}
        self.redis_ports: dict[str, int] = {}
        self.sentinel_ports: list[int] = []
        self.haproxy_port = 0
        self.secret_key = secrets.token_urlsafe(32)
        from cryptography.fernet import Fernet

        self.credentials_key = Fernet.generate_key().decode()
        self._own_base = self.base is None
        self._stopping = threading.Event()
        self.restarts: dict[str, int] = {}

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> "Topology":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.base is None:
            self.base = Path(tempfile.mkdtemp(prefix="upz-topology-", dir="/var/tmp"))
        self.base.chmod(0o755)
        started = time.monotonic()
        self._start_postgres()
        self._start_redis()
        if self.pgbouncer:
            self.bouncer = PgBouncer(self.base, free_port(), self.pg_primary.port, self._plain_env())
            self.procs.append(self.bouncer.proc)
            self.bouncer.start()
        self._bootstrap()
        self.haproxy_port = free_port()
        for _ in range(self.web_nodes):
            self.add_web_node(wait=False)
        for _ in range(self.workers):
            self.add_worker()
        if self.relay:
            self.relay_proc = self._spawn("relay", [sys.executable, "-m", "app.jobs.relay"])
        for i in range(len(self.webs)):
            self.wait_web_ready(i)
        self._start_haproxy()
        self._supervisor = threading.Thread(target=self._supervise, name="topology-supervisor", daemon=True)
        self._supervisor.start()
        wait_for(lambda: http_status(self.url + "/health/ready") == 200, 60, "HAProxy to answer /health/ready")
        log.info("topology up in %.1fs under %s", time.monotonic() - started, self.base)

    def _supervise(self) -> None:
        """Restart workers and the relay when they exit, as systemd or compose's `restart:` would.

        An RQ worker quits when Redis vanishes under a running job; its supervisor starts it again.
        """
        while not self._stopping.wait(0.5):
            for proc in [*self.rq_workers, *([self.relay_proc] if self.relay_proc else [])]:
                if proc.popen is not None and proc.popen.poll() is not None and not self._stopping.is_set():
                    log.warning("%s exited (%s); restarting it", proc.name, proc.popen.returncode)
                    self.restarts[proc.name] = self.restarts.get(proc.name, 0) + 1
                    proc.start()

    def stop(self) -> None:
        self._stopping.set()
        for proc in reversed(self.procs):
            proc.stop(timeout=5)
        for server in (self.pg_spare, self.pg_replica, self.pg_primary):
            if server is not None:
                server.stop("immediate")
        if self._own_base and self.base is not None and not os.environ.get("UPZENTO_TOPOLOGY_KEEP"):
            shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ PostgreSQL
    def _start_postgres(self) -> None:
        self.pg_primary = PgServer(self.base, "pg-a", free_port())
        self.pg_primary.init_primary()
        self.pg_primary.start()
        self.pg_primary.sql(f"CREATE DATABASE {DB_NAME}", db="postgres")
        standbys = []
        if self.replica:
            self.pg_replica = PgServer(self.base, "pg-b", free_port())
            standbys.append((self.pg_replica, "pg_b"))
        if self.spare:
            self.pg_spare = PgServer(self.base, "pg-c", free_port())
            standbys.append((self.pg_spare, "pg_c"))
        for server, name in standbys:
            server.init_standby(self.pg_primary, name)
            server.start()
        if self.pg_replica is not None:
            self._make_sync(self.pg_primary, "pg_b")

    @staticmethod
    def _make_sync(primary: PgServer, standby_name: str, timeout: float = 30) -> None:
        """Once `standby_name` streams from `primary`, make it the synchronous standby (commits wait for it)."""
        wait_for(lambda: primary.sql(
            f"SELECT 1 FROM pg_stat_replication WHERE application_name = '{standby_name}' AND state = 'streaming'"),
            timeout, f"{standby_name} to stream")
        primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{standby_name}'")
        # A commit returns once the standby has applied it: an acknowledged booking survives the
        # primary's loss, and the replica's reads already show it (read-your-writes on the replica).
        primary.sql("ALTER SYSTEM SET synchronous_commit = 'remote_apply'")
        primary.sql("SELECT pg_reload_conf()")
        wait_for(lambda: primary.sql(
            f"SELECT 1 FROM pg_stat_replication WHERE application_name = '{standby_name}' AND sync_state = 'sync'"),
            timeout, f"{standby_name} to be the synchronous standby")

    def pg_servers(self) -> list[PgServer]:
        return [s for s in (self.pg_primary, self.pg_replica, self.pg_spare) if s is not None]

    @property
    def multi_host_url(self) -> str:
        """libpq multi-host URL over every server (the app's config adds target_session_attrs=read-write)."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.pg_servers())
        return f"postgresql://postgres@{hosts}/{DB_NAME}"

    def failover(self, mode: str = "fast") -> float:
        """Stop the primary (pg_ctl -m fast|immediate), promote the replica, retarget PgBouncer; seconds it took.

        The spare, if any, then follows the new primary and becomes its synchronous standby.
        """
        if self.pg_replica is None:
            raise RuntimeError("no replica to promote")
        started = time.monotonic()
        old, new = self.pg_primary, self.pg_replica
        old.stop(mode)
        new.promote()
        wait_for(lambda: new.sql("SELECT NOT pg_is_in_recovery()")[0][0], 30, "the promoted replica to accept writes")
        if self.bouncer is not None:
            self.bouncer.retarget(new.port)
        self.pg_primary, self.pg_replica = new, None
        elapsed = time.monotonic() - started
        if self.pg_spare is not None:
            spare, self.pg_spare = self.pg_spare, None
            spare.sql(f"ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port={new.port} user=postgres "
                      f"application_name=pg_c'")
            spare.sql("SELECT pg_reload_conf()")
            try:
                self._make_sync(new, "pg_c", timeout=30)
                self.pg_replica = spare
            except TimeoutError:
                log.warning("the spare did not follow the new primary; it runs without a synchronous standby")
                self.pg_spare = spare
        return elapsed

    # ------------------------------------------------------------------ Redis + Sentinel
    def _redis_binary(self) -> str:
        return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "redis-server"

    def _start_redis_server(self, name: str, port: int, replica_of: int | None = None) -> Proc:
        d = self.base / name
        d.mkdir(exist_ok=True)
        conf = [f"port {port}", "bind 127.0.0.1", f"dir {d}", 'save ""', "appendonly no", "protected-mode no",
                "daemonize no", f"logfile {d / 'redis.log'}", "repl-diskless-sync yes", "repl-diskless-sync-delay 0"]
        if replica_of:
            conf.append(f"replicaof 127.0.0.1 {replica_of}")
        (d / "redis.conf").write_text("\n".join(conf) + "\n")
        proc = Proc(name, [self._redis_binary(), str(d / "redis.conf")], self._plain_env(), d / "stdout.log").start()
        self.procs.append(proc)
        self.redis[name] = proc
        self.redis_ports[name] = port
        wait_for(lambda: self._redis(port).ping(), 15, f"{name} to answer")
        return proc

    @staticmethod
    def _redis(port: int):
        import redis

        return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=2)

    def _start_redis(self) -> None:
        a, b = free_port(), free_port()
        self._start_redis_server("redis-a", a)
        if not self.sentinel:
            return
        self._start_redis_server("redis-b", b, replica_of=a)
        wait_for(lambda: self._redis(a).info("replication").get("connected_slaves") == 1, 20, "the Redis replica")
        for i in range(3):
            port = free_port()
            d = self.base / f"sentinel-{i}"
            d.mkdir()
            (d / "sentinel.conf").write_text("\n".join([
                f"port {port}", "bind 127.0.0.1", f"dir {d}", "protected-mode no", "daemonize no",
                f"logfile {d / 'sentinel.log'}",
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {a} 2",
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000",
                f"sentinel failover-timeout {SENTINEL_MASTER} 5000",
                f"sentinel parallel-syncs {SENTINEL_MASTER} 1", ""]))
            sentinel = shutil.which("redis-sentinel") or "redis-sentinel"
            self.procs.append(Proc(f"sentinel-{i}", [sentinel, str(d / "sentinel.conf")], self._plain_env(),
                                   d / "stdout.log").start())
            self.sentinel_ports.append(port)
        for port in self.sentinel_ports:
            wait_for(lambda p=port: self._redis(p).execute_command("SENTINEL", "REPLICAS", SENTINEL_MASTER), 20,
                     "each sentinel to see the replica")

    def redis_master_port(self) -> int:
        """The port the sentinels name as master (or the single Redis)."""
        if not self.sentinel:
            return self.redis_ports["redis-a"]
        for port in self.sentinel_ports:
            with contextlib.suppress(Exception):
                host, master = self._redis(port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER)
                return int(master)
        raise RuntimeError("no sentinel answers")

    def redis_failover(self, kill: bool = True) -> float:
        """Kill the Redis master; seconds until the sentinels name the replica master and it accepts writes."""
        started = time.monotonic()
        old_port = self.redis_master_port()
        name = next(n for n, p in self.redis_ports.items() if p == old_port)
        self.redis[name].kill(signal.SIGKILL if kill else signal.SIGTERM)
        new_port = wait_for(lambda: (p := self.redis_master_port()) != old_port and p, 30, "Sentinel to elect a master")
        wait_for(lambda: self._redis(new_port).info("replication")["role"] == "master", 15, "the new master")
        return time.monotonic() - started

    def restart_redis_empty(self) -> None:
        """Restart the single Redis (no Sentinel) without its data: every queued job is gone."""
        name = "redis-a"
        proc = self.redis[name]
        proc.kill(signal.SIGKILL)
        proc.popen.wait(5)
        self.procs.remove(proc)
        self._start_redis_server(name, self.redis_ports[name])

    # ------------------------------------------------------------------ application
    def _plain_env(self) -> dict:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "PYENV_ROOT",
                                                              "PYENV_VERSION", "VIRTUAL_ENV", "TMPDIR")}
        return {**keep, "PYTHONPATH": str(ROOT)}

    @property
    def database_url(self) -> str:
        """What the web nodes and workers use: PgBouncer, or the multi-host URL without it."""
        return self.bouncer.url if self.bouncer is not None else self.multi_host_url

    def app_env(self) -> dict:
        """The environment of every application process (production settings)."""
        env = {
            **self._plain_env(),
            "UPZENTO_ENV": "production",
            "SECRET_KEY": self.secret_key,
            "CREDENTIALS_KEYS": self.credentials_key,
            "PUBLIC_URL": f"http://127.0.0.1:{self.haproxy_port}",
            "TRUSTED_PROXIES": "1",
            "DATABASE_URL": self.database_url,
            # The relay LISTENs outside the pooler; the multi-host URL finds the primary after a failover.
            "DATABASE_DIRECT_URL": self.multi_host_url,
            "DATABASE_POOLER": "transaction" if self.bouncer is not None else "",
            "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "10", "DB_IDLE_PING_SECONDS": "1",
            "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING", "METRICS_ENABLED": "false",
            # Load tests book from one address (HAProxy's): the per-IP limits would refuse them.
            "PUBLIC_RATE_LIMIT_PER_IP": "1000000/minute", "PUBLIC_BOOKING_RATE_LIMIT_PER_IP": "1000000/minute",
            "OUTBOX_SWEEP_SECONDS": "1", "OUTBOX_REQUEUE_SECONDS": "10",
        }
        if self.pg_replica is not None:
            env["DATABASE_REPLICA_URL"] = self.pg_replica.url
        if self.sentinel:
            env["REDIS_SENTINELS"] = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
            env["REDIS_SENTINEL_MASTER"] = SENTINEL_MASTER
        else:
            env["REDIS_URL"] = f"redis://127.0.0.1:{self.redis_ports['redis-a']}/0"
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        proc = Proc(name, argv, self.app_env(), self.base / f"{name}.log").start()
        self.procs.append(proc)
        return proc

    def _bootstrap(self) -> None:
        """Migrate, sync roles, create the agency and the business the load tests book (idempotent)."""
        env = {**self.app_env(), "DATABASE_URL": self.pg_primary.url}
        done = subprocess.run([sys.executable, "-m", "ops.topology", "bootstrap"], env=env, cwd=str(ROOT),
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"bootstrap failed: {done.stderr[-3000:]}")

    def add_web_node(self, wait: bool = True) -> int:
        """Start one more gunicorn node; returns its index."""
        port = free_port()
        i = len(self.webs)
        proc = self._spawn(f"web-{i}", [
            sys.executable, "-m", "gunicorn", "--config", "python:app.gunicorn_conf", "-b", f"127.0.0.1:{port}",
            "-w", str(self.web_workers), "--threads", str(self.web_threads), "--worker-class", "gthread",
            "--graceful-timeout", "5", "--timeout", "60", "--no-control-socket", "app.wsgi:application"])
        self.webs.append(proc)
        self.web_ports.append(port)
        if wait:
            self.wait_web_ready(i)
        return i

    def wait_web_ready(self, i: int, timeout: float = 90) -> None:
        def ready():
            if not self.webs[i].running():
                raise RuntimeError(f"web-{i} exited:\n{self.webs[i].tail()}")
            return http_status(self.web_url(i) + "/health/ready") == 200

        wait_for(ready, timeout, f"web-{i} to be ready")

    def web_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[i]}"

    def kill_web(self, i: int) -> None:
        """SIGKILL a web node (master and workers)."""
        self.webs[i].kill(signal.SIGKILL)

    def add_worker(self) -> Proc:
        proc = self._spawn(f"worker-{len(self.rq_workers)}", [
            sys.executable, "-m", "rq.cli", "worker", "-c", "app.rq_settings", "-w", "app.jobs.worker.AppWorker",
            "--with-scheduler", "notifications", "integrations", "default"])
        self.rq_workers.append(proc)
        return proc

    # ------------------------------------------------------------------ HAProxy
    def _start_haproxy(self) -> None:
        d = self.base / "haproxy"
        d.mkdir(exist_ok=True)
        servers = "\n".join(f"    server web{i} 127.0.0.1:{port} check" for i, port in enumerate(self.web_ports))
        template = (ROOT / "deploy" / "haproxy.cfg").read_text()
        cfg = (template.replace("bind :8080", f"bind 127.0.0.1:{self.haproxy_port}")
               .split("    # servers", 1)[0] + "    # servers\n" + servers + "\n")
        (d / "haproxy.cfg").write_text(cfg)
        check = subprocess.run(["haproxy", "-c", "-f", str(d / "haproxy.cfg")], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy.cfg refused: {check.stdout}{check.stderr}")
        self.procs.append(Proc("haproxy", ["haproxy", "-db", "-f", str(d / "haproxy.cfg")], self._plain_env(),
                               d / "haproxy.log").start())

    @property
    def url(self) -> str:
        """The public entry point (HAProxy)."""
        return f"http://127.0.0.1:{self.haproxy_port}"

    def describe(self) -> dict:
        return {
            "public (HAProxy)": self.url,
            "web nodes": [self.web_url(i) for i in range(len(self.webs))],
            "PostgreSQL primary": self.pg_primary.url if self.pg_primary else None,
            "PostgreSQL replica": self.pg_replica.url if self.pg_replica else None,
            "PostgreSQL spare": self.pg_spare.url if self.pg_spare else None,
            "PgBouncer": self.bouncer.url if self.bouncer else None,
            "Redis": {name: f"redis://127.0.0.1:{port}" for name, port in self.redis_ports.items()},
            "Sentinels": [f"127.0.0.1:{p}" for p in self.sentinel_ports],
            "business": f"{self.url}/api/v1/public/{TENANT}/services",
            "folder": str(self.base),
        }


# ---------------------------------------------------------------------- bootstrap (runs in a child)
def bootstrap() -> None:
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models.public import Agency, Tenant
    from app.security import sync_all_roles
    from app.services.setup_io import import_setup
    from tenants.provisioning import create_agency, migrate_all

    app = create_app()
    with app.app_context():
        migrate_all(db.engine)
        sync_all_roles(app)
        if db.session.scalar(select(Agency).where(Agency.slug == AGENCY)) is None:
            create_agency(db.session, AGENCY, "Operations")
            db.session.commit()
        if db.session.scalar(select(Tenant).where(Tenant.slug == TENANT)) is None:
            import_setup(db.engine, json.loads(json.dumps(SETUP)), AGENCY)
        db.session.remove()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ops.topology", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the topology and print its URLs; Ctrl-C stops it")
    up.add_argument("--web", type=int, default=2, help="web nodes (default 2)")
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--spare", action="store_true", help="a second standby that follows the new primary on failover")
    up.add_argument("--no-pgbouncer", action="store_true", help="web nodes use the multi-host URL directly")
    sub.add_parser("bootstrap", help="(internal) migrate and create the demo business")
    args = parser.parse_args(argv)
    if args.command == "bootstrap":
        bootstrap()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    topo = Topology(web_nodes=args.web, workers=args.workers, spare=args.spare, pgbouncer=not args.no_pgbouncer)
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    with topo:
        print(json.dumps(topo.describe(), indent=2), flush=True)
        print("Ctrl-C stops everything. Environment of the app processes:", flush=True)
        env = topo.app_env()
        for key in sorted(k for k in env if k.isupper() and k not in os.environ or k == "DATABASE_URL"):
            print(f"  {key}={env[key]}", flush=True)
        try:
            while not stop:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
