"""Encryption of stored credentials (calendar tokens, webhook secrets, provider keys).

`encrypt(text) -> str` and `decrypt(token) -> str` use Fernet (AES-128-CBC + HMAC-SHA256)
through a MultiFernet built from `CREDENTIALS_KEYS`: comma-separated Fernet keys, the
first encrypts, every one decrypts. Rotation: put a new key first, keep the old ones
after it, run `rotate()` over the stored values, then drop the old keys.

Outside development a missing `CREDENTIALS_KEYS` stops the app at start-up
(app.settings_check). In development, without the setting, a key is derived from
SECRET_KEY (run.py keeps a random SECRET_KEY in its data directory), so encrypted
values survive restarts of the same data directory.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["encrypt", "decrypt", "rotate", "generate_key", "InvalidToken", "configured_keys"]


def generate_key() -> str:
    """A new random Fernet key (urlsafe base64 text), for CREDENTIALS_KEYS."""
    return Fernet.generate_key().decode()


def _config() -> dict:
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.config
    from config import Config

    return {k: getattr(Config, k) for k in ("CREDENTIALS_KEYS", "SECRET_KEY", "ENV")}


def _dev_key(secret: str) -> str:
    digest = hashlib.sha256(b"upzento-credentials-v1:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def configured_keys(config: dict | None = None) -> list[str]:
    """The key list in use: CREDENTIALS_KEYS, or (development only) one derived from SECRET_KEY."""
    config = config if config is not None else _config()
    raw = config.get("CREDENTIALS_KEYS") or os.environ.get("CREDENTIALS_KEYS") or ""
    keys = [k.strip() for k in str(raw).split(",") if k.strip()]
    if keys:
        return keys
    if (config.get("ENV") or "production") == "development" and config.get("SECRET_KEY"):
        return [_dev_key(str(config["SECRET_KEY"]))]
    raise RuntimeError(
        "CREDENTIALS_KEYS is not set: stored credentials cannot be encrypted. "
        "Set CREDENTIALS_KEYS to one or more comma-separated Fernet keys "
        "(python -c 'from app.crypto import generate_key; print(generate_key())')."
    )


_cache: dict[tuple[str, ...], MultiFernet] = {}


def _fernet() -> MultiFernet:
    keys = tuple(configured_keys())
    f = _cache.get(keys)
    if f is None:
        try:
            f = MultiFernet([Fernet(k.encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise RuntimeError(f"CREDENTIALS_KEYS holds a key that is not a Fernet key: {exc}") from None
        _cache.clear()
        _cache[keys] = f
    return f


def encrypt(text: str) -> str:
    """Encrypt a text; the result is ASCII (a Fernet token) and safe to store in a text column."""
    return _fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token made by encrypt() with any configured key; InvalidToken if none fits."""
    return _fernet().decrypt(token.encode("ascii")).decode("utf-8")


def rotate(token: str) -> str:
    """Re-encrypt a token under the first (newest) key."""
    return _fernet().rotate(token.encode("ascii")).decode("ascii")


def check_keys(config: dict) -> None:
    """Raise RuntimeError unless the configured keys are usable (start-up check)."""
    try:
        for k in configured_keys(config):
            Fernet(k.encode())
    except (ValueError, TypeError) as exc:
        raise RuntimeError(f"CREDENTIALS_KEYS holds a key that is not a Fernet key: {exc}") from None
