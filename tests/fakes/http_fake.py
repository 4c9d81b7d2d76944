"""A tiny threaded HTTP server on 127.0.0.1 for faking external APIs in tests.

Subclasses register routes; every request is logged; failures can be scripted
ahead of time. Example::

    class FakeThing(HttpFake):
        def __init__(self):
            super().__init__()
            self.route("POST", r"/v1/things", self.create_thing)

        def create_thing(self, req, match):
            return Response.json(201, {"id": "t1"})

    with FakeThing() as fake:
        requests.post(fake.base_url + "/v1/things")
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

LOOPBACK = "127.0.0.1"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int | None = None  # filled in once answered

    @property
    def form(self) -> dict[str, str]:
        """Form fields (last value wins, like most frameworks)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode(), keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, status: int, text: str, headers: dict[str, str] | None = None) -> "Response":
        return cls(status, text.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


Handler = Callable[[Request, "re.Match[str]"], Response]


@dataclass
class _Scripted:
    response: Response
    method: str | None
    path: re.Pattern[str] | None

    def matches(self, req: Request) -> bool:
        return (self.method is None or self.method == req.method) and (
            self.path is None or bool(self.path.fullmatch(req.path)))


class HttpFake:
    """Base class: start with ``with``, read ``base_url``, inspect ``requests``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._scripted: deque[_Scripted] = deque()
        self._log: list[Request] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------

    def route(self, method: str, path_regex: str, handler: Handler) -> None:
        """Answer ``method`` requests whose path fully matches ``path_regex``."""
        self._routes.append((method.upper(), re.compile(path_regex), handler))

    def fail_next(self, status: int, body: Any = b"", headers: dict[str, str] | None = None,
                  times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of the route.

        ``body`` may be bytes, str, or anything JSON-serialisable.
        """
        if isinstance(body, bytes):
            response = Response(status, body, dict(headers or {}))
        elif isinstance(body, str):
            response = Response.text(status, body, headers)
        else:
            response = Response.json(status, body, headers)
        entry = _Scripted(response, method.upper() if method else None, re.compile(path) if path else None)
        with self._cond:
            self._scripted.extend(entry for _ in range(times))

    # -- life cycle -----------------------------------------------------------

    def start(self) -> "HttpFake":
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5  # idle keep-alive connections go away on their own

            def _dispatch(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        self._server.daemon_threads = True
        # A short poll keeps stop() (which waits for one poll) from adding 0.5 s per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HttpFake":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # -- inspection -----------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        with self._cond:
            return list(self._log)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[Request]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._log) >= n, timeout):
                raise TimeoutError(f"expected {n} requests, got {len(self._log)}")
            return list(self._log)

    # -- serving --------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        req = Request(
            method=h.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in h.headers.items()},
            body=h.rfile.read(length) if length else b"",
        )
        try:
            response = self._respond(req)
        except Exception as exc:  # a bug in a fake must show up as a 500, not a hang
            response = Response.text(500, f"fake crashed: {type(exc).__name__}: {exc}")
        req.status = response.status
        with self._cond:
            self._log.append(req)
            self._cond.notify_all()
        h.send_response(response.status)
        for name, value in response.headers.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(response.body)))
        h.end_headers()
        if req.method != "HEAD":
            h.wfile.write(response.body)

    def _respond(self, req: Request) -> Response:
        with self._cond:
            for entry in self._scripted:
                if entry.matches(req):
                    self._scripted.remove(entry)
                    return entry.response
        allowed = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if method == req.method:
                return handler(req, match)
            allowed = True
        if allowed:
            return Response.json(405, {"error": "method not allowed"})
        return Response.json(404, {"error": f"no route for {req.method} {req.path}"})


def oauth_client(req: Request) -> tuple[str | None, str | None]:
    """The (client_id, client_secret) a token request authenticates with: HTTP Basic (RFC 6749 §2.3.1) or the form."""
    import base64
    from urllib.parse import unquote_plus

    auth = req.headers.get("authorization", "")
    if auth.startswith("Basic "):
        user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return unquote_plus(user), unquote_plus(password)
    form = req.form
    return form.get("client_id"), form.get("client_secret")
