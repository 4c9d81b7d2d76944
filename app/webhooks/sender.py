"""HTTP delivery to a webhook URL with the SSRF guard.

- only http and https;
- the host is resolved once; every address it resolves to must be public (no
  loopback, private, link-local, shared, multicast, reserved or cloud metadata
  addresses, IPv4 or IPv6, IPv4-mapped and -compatible forms included) unless
  `allow_private`; the connection is then pinned to that address (TLS still
  checks the certificate against the host name), so a second DNS answer cannot
  point the request elsewhere;
- 10 s timeout for connecting and for each read, and the whole exchange ends by then;
- redirects are never followed (a 3xx is a failed delivery);
- at most 64 KB of the response body is read.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "Upzento-Webhooks/1"
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254"))


class Refused(ValueError):
    """The URL may not be called (scheme, address or name); never retried as a network error."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query
    address: str  # the pinned IP


def forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be called, or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            why = forbidden(inner)
            if why:
                return why
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for label, test in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("multicast", ip.is_multicast), ("private", ip.is_private),
                        ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved)):
        if test:
            return f"a {label} address"
    if not ip.is_global:
        return "not a public address"
    return None


def resolve(url: str, allow_private: bool = False) -> Target:
    """Check `url` and resolve its host once; raises Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise Refused("only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise Refused("the URL has no host")
    if parts.username or parts.password:
        raise Refused("credentials in the URL are not allowed")
    port = port or (443 if scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        literal = ipaddress.ip_address(host)
        addresses = [literal]
    except ValueError:
        literal = None
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise Refused(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            raise Refused(f"{host} has no address")
    if not allow_private:
        for ip in addresses:
            why = forbidden(ip)
            if why:
                raise Refused(f"{host} resolves to {ip}, {why}" if literal is None else f"{ip} is {why}")
    return Target(scheme, host, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout, context=_tls())
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass
class Result:
    status: int | None  # None: no HTTP answer
    body: bytes
    latency_ms: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Sender:
    """Posts to one URL over one kept-alive, pinned connection (one sender per endpoint and drain)."""

    def __init__(self, url: str, allow_private: bool = False, timeout: float = TIMEOUT_SECONDS):
        self.url = url
        self.timeout = timeout
        self.target = resolve(url, allow_private)  # raises Refused
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = _PinnedHTTPS if self.target.scheme == "https" else _PinnedHTTP
            self._conn = cls(self.target, self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes, headers: dict[str, str]) -> Result:
        """POST `body`; never raises for network trouble (the Result says what happened)."""
        started = time.monotonic()
        all_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
        for attempt in (0, 1):
            conn = self._connection()
            fresh = conn.sock is None
            try:
                conn.request("POST", self.target.path, body=body, headers=all_headers)
                response = conn.getresponse()
                data = self._read(response, started)
                status = response.status
                if response.will_close or not response.isclosed():
                    self.close()  # not read to the end, or the server closes: no reuse
                result = Result(status, data, int((time.monotonic() - started) * 1000))
                if 300 <= status < 400:
                    result.error = f"redirect ({status}) not followed"
                return result
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # A kept-alive connection the server had closed: try once on a new one.
                if attempt == 0 and not fresh:
                    continue
                return Result(None, b"", int((time.monotonic() - started) * 1000), f"{type(exc).__name__}: {exc}")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                return Result(None, b"", int((time.monotonic() - started) * 1000),
                              f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        raise AssertionError("unreachable")

    def _read(self, response: http.client.HTTPResponse, started: float) -> bytes:
        chunks, size = [], 0
        while size < MAX_RESPONSE_BYTES:
            if time.monotonic() - started > self.timeout:
                raise TimeoutError("response took longer than the timeout")
            chunk = response.read1(MAX_RESPONSE_BYTES - size) if hasattr(response, "read1") else response.read(
                MAX_RESPONSE_BYTES - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
