"""`python run.py` end to end: embedded services, health, demo log-in, clean stop with nothing left running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_under(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
            if str(data_dir) in text:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_run_py_serves_demo_and_stops_cleanly(tmp_path_factory):
    data_dir = Path(tmp_path_factory.mktemp("run-data", numbered=True))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DATA_DIR=str(data_dir), PORT=str(port), WEB_WORKERS="1")
    log_path = data_dir.parent / f"{data_dir.name}-run.log"
    log = open(log_path, "w")  # a file, not a pipe: children's logs must never block on a full pipe
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                health = requests.get(f"{base}/health", timeout=2)
                if health.status_code == 200:
                    break
            except requests.RequestException:
                pass  # not listening yet, or a worker still booting
            assert time.monotonic() < deadline, "run.py did not become healthy in 120 s"
            time.sleep(0.5)
        assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}

        http = requests.Session()
        login_page = http.get(f"{base}/login/", timeout=10).text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page)
        form = {"username": "owner", "password": "owner-demo-1"}
        if csrf:
            form["csrf_token"] = csrf.group(1)
        http.post(f"{base}/login/", data=form, timeout=10)
        page = http.get(f"{base}/switch/", timeout=10)
        assert page.status_code == 200
        assert "Bella Hair Salon" in page.text and "City Physio" in page.text

        # The banner names each demo business's widget demo page; it serves the booking flow.
        deadline = time.monotonic() + 30
        while "/demo" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.5)
        demo = re.search(r"(http://\S+/widget/v1/bella_salon/\S+/demo)", log_path.read_text()).group(1)
        assert requests.get(demo, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    log.close()
    assert proc.returncode == 0, log_path.read_text()[-2000:]
    time.sleep(1)
    assert _processes_under(data_dir) == []
