"""Static files of the admin: fingerprinted names, pre-compressed copies, served by WhiteNoise.

At start-up every file of Flask-AppBuilder's static folder and of the project's own
(`app/static`) is copied once into `DATA_DIR/assets/<digest>/` under its own name and
under a fingerprinted one (`css/admin.3f9a0c1d2e4b.css`), with gzip and Brotli
siblings. `url_for('appbuilder.static' | 'static', filename=...)` answers the
fingerprinted name, which WhiteNoise serves with a year of `immutable` caching; the
plain names (referenced from inside stylesheets, e.g. web fonts) stay available
with a short cache. A changed file gets a new name, so no one sees a stale copy.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from flask import Flask

FINGERPRINT = re.compile(r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$")
# Source maps, the Swagger bundle and chart scripts are large and never used by the admin's pages.
SKIP = re.compile(r"(\.map$|(^|/)swagger|google_charts)")
SHORT_MAX_AGE = 3600


class Assets:
    def __init__(self, app: Flask) -> None:
        import flask_appbuilder

        fab_static = Path(flask_appbuilder.__file__).parent / "static" / "appbuilder"
        own_static = Path(app.root_path) / "static"
        # endpoint -> (source folder, URL prefix)
        self.roots = {
            "appbuilder.static": (fab_static, "/static/appbuilder/"),
            "static": (own_static, (app.static_url_path or "/static").rstrip("/") + "/"),
        }
        self.names: dict[str, dict[str, str]] = {}
        self.build_root = Path(app.config["DATA_DIR"]) / "assets"

    def build(self) -> dict[str, Path]:
        """Fingerprint and compress every file (once per content); answer endpoint -> built folder."""
        listing: dict[str, list[tuple[str, Path, str]]] = {}
        overall = hashlib.sha256()
        for endpoint, (root, _prefix) in self.roots.items():
            files = []
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                rel = path.relative_to(root).as_posix()
                if SKIP.search(rel) or rel.endswith((".gz", ".br")):
                    continue
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()[:12]
                files.append((rel, path, digest))
                overall.update(f"{endpoint}:{rel}:{digest}\n".encode())
            listing[endpoint] = files
            self.names[endpoint] = {rel: _hashed(rel, digest) for rel, _p, digest in files}
        target = self.build_root / overall.hexdigest()[:16]
        if not (target / ".complete").exists():
            self._write(target, listing)
        return {endpoint: target / _folder(endpoint) for endpoint in self.roots}

    def _write(self, target: Path, listing) -> None:
        from whitenoise.compress import Compressor

        self.build_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=self.build_root))
        compressor = Compressor(quiet=True)
        for endpoint, files in listing.items():
            base = scratch / _folder(endpoint)
            for rel, source, digest in files:
                for name in {rel, _hashed(rel, digest)}:
                    out = base / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, out)
                    if compressor.should_compress(name):
                        for _ in compressor.compress(str(out)):
                            pass
        (scratch / ".complete").write_text("ok")
        try:
            os.rename(scratch, target)
        except OSError:  # another worker finished first: its copy is the same
            shutil.rmtree(scratch, ignore_errors=True)

    def url_name(self, endpoint: str, filename: str) -> str:
        return self.names.get(endpoint, {}).get(filename, filename)


def _folder(endpoint: str) -> str:
    return endpoint.replace(".", "_")


def _hashed(rel: str, digest: str) -> str:
    stem, dot, ext = rel.rpartition(".")
    if not dot or "/" in ext:
        return f"{rel}.{digest}"
    return f"{stem}.{digest}.{ext}"


def _immutable(path: str, url: str) -> bool:
    return bool(FINGERPRINT.search(url))


def init_app(app: Flask) -> None:
    """Serve the built files ahead of the app and make url_for answer fingerprinted names."""
    from whitenoise import WhiteNoise

    assets = Assets(app)
    folders = assets.build()
    server = WhiteNoise(app.wsgi_app, max_age=SHORT_MAX_AGE, immutable_file_test=_immutable, autorefresh=False)
    for endpoint, folder in folders.items():
        server.add_files(str(folder), prefix=assets.roots[endpoint][1])
    app.wsgi_app = server
    app.extensions["upzento_assets"] = assets

    @app.url_defaults
    def _fingerprinted(endpoint: str, values: dict) -> None:
        if endpoint in assets.roots and "filename" in values:
            values["filename"] = assets.url_name(endpoint, values["filename"])

    @app.route("/favicon.ico")
    def favicon():
        from flask import redirect, url_for

        return redirect(url_for("static", filename="favicon.svg"), code=301)
