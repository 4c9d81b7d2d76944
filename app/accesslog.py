"""gunicorn access log without secrets: the tokens of manage, sign-in, invitation and reset
links are replaced by `[redacted]` in the request line, path, query and referer.

run.py starts gunicorn with `--logger-class app.accesslog.RedactingLogger`; use the same
option in production (`gunicorn --logger-class app.accesslog.RedactingLogger app.wsgi:application`).
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

# A path segment that is a secret: what follows these prefixes.
_SECRET_PATHS = re.compile(
    r"(/account/(?:reset|accept)/|/portal/[^/?#\s]+/(?:auth|manage)/|/api/v1/public/[^/?#\s]+/bookings/)"
    r"[^/?#\s]+"
)
_SECRET_QUERY = re.compile(r"(?i)\b((?:token|manage_token|key|api_key|secret|code|password)=)[^&\s#]+")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    if not text:
        return text
    text = _SECRET_PATHS.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_QUERY.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "q", "f"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact(atoms[name])
        return atoms
