"""Item 4: production refuses a missing/default secret and credentials key; app.crypto round trips and rotates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "ENV": "production",
    "SECRET_KEY": "x" * 40,
    "CREDENTIALS_KEYS": Fernet.generate_key().decode(),
    "PUBLIC_URL": "https://book.example.com",
    "SQLALCHEMY_DATABASE_URI": "postgresql://unused@127.0.0.1:1/none",
}


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"SECRET_KEY": "dev-only-change-me"}, "SECRET_KEY"),
        ({"SECRET_KEY": None}, "SECRET_KEY"),
        ({"CREDENTIALS_KEYS": None}, "CREDENTIALS_KEYS"),
        ({"CREDENTIALS_KEYS": "not-a-key"}, "CREDENTIALS_KEYS"),
        ({"PUBLIC_URL": None}, "PUBLIC_URL"),
    ],
)
def test_production_refuses_unsafe_settings(change, needle, monkeypatch):
    from app import create_app
    from app.settings_check import UnsafeSettings

    monkeypatch.delenv("CREDENTIALS_KEYS", raising=False)
    with pytest.raises(UnsafeSettings, match=needle):
        create_app({**GOOD, **change})


def test_wsgi_entry_point_refuses_the_default_secret():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "CREDENTIALS_KEYS", "PUBLIC_URL", "UPZENTO_ENV")}
    env.update({"DATABASE_URL": "postgresql://unused@127.0.0.1:1/none", "PYTHONPATH": str(ROOT)})
    out = subprocess.run([sys.executable, "-c", "import app.wsgi"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "refusing to start" in out.stderr and "SECRET_KEY" in out.stderr and "CREDENTIALS_KEYS" in out.stderr


def test_development_derives_what_it_needs(app):
    assert app.config["ENV"] == "development"
    assert app.config["PUBLIC_URL"].startswith("http://")


def test_crypto_round_trip_and_rotation(app):
    from app import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with app.app_context():
        saved = app.config.get("CREDENTIALS_KEYS")
        try:
            app.config["CREDENTIALS_KEYS"] = old
            token = crypto.encrypt("refresh-token-ü")
            assert token != "refresh-token-ü" and crypto.decrypt(token) == "refresh-token-ü"
            app.config["CREDENTIALS_KEYS"] = f"{new},{old}"
            assert crypto.decrypt(token) == "refresh-token-ü"  # old key still decrypts
            rotated = crypto.rotate(token)
            app.config["CREDENTIALS_KEYS"] = new
            assert crypto.decrypt(rotated) == "refresh-token-ü"
            with pytest.raises(crypto.InvalidToken):
                crypto.decrypt(token)
        finally:
            app.config["CREDENTIALS_KEYS"] = saved
