"""A business's own domain (`book.salon.example`) for its links, widget and portal.

The flow:

1. `set_domain` stores the host name and a fresh random token (not yet verified).
2. The owner publishes the token as the whole content of
   `https://<domain>/.well-known/upzento-domain.txt` on the domain's current web server.
3. `check_published` fetches that file (no database, no transaction open) and compares;
   `mark_verified` then records the proof. Only now do links use `https://<domain>`
   and requests for that host reach the business (app.tenancy.resolve_custom_host).

Nothing here reads a request header: the platform fetches the domain itself. The fetch
connects to the address the domain resolves to, refusing private, loopback and
link-local addresses (no requests into the platform's own network), except for the
loopback addresses a test maps with CUSTOM_DOMAIN_RESOLVE (curl --resolve style).
Several businesses may claim a name while verifying; one holds it verified (a
partial unique index backs the check).
"""

from __future__ import annotations

import datetime as dt
import hmac
import http.client
import ipaddress
import json
import re
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ApiError, Conflict, ValidationError
from app.models.public import Tenant

WELL_KNOWN_PATH = "/.well-known/upzento-domain.txt"
MAX_FILE_BYTES = 1024
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
FIELD = "custom_domain"


class DomainNotVerified(ApiError):
    """The published token could not be fetched or did not match (422, message says why)."""

    status = 422

    def __init__(self, message: str):
        super().__init__("domain_not_verified", message, FIELD)


@dataclass(frozen=True)
class CheckSettings:
    """How the verification fetch reaches a domain (from config; tests map domains to loopback)."""

    platform_host: str
    scheme: str = "https"
    timeout: float = 5.0
    resolve: Mapping[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CheckSettings":
        from app.links import platform_base

        scheme = str(config.get("CUSTOM_DOMAIN_VERIFY_SCHEME") or "https").lower()
        if scheme not in ("https", "http"):
            raise ValueError(f"CUSTOM_DOMAIN_VERIFY_SCHEME must be https or http, not {scheme!r}")
        return cls(platform_host=(urlsplit(platform_base(config)).hostname or "").lower(), scheme=scheme,
                   timeout=float(config.get("CUSTOM_DOMAIN_VERIFY_TIMEOUT") or 5),
                   resolve=parse_resolve(config.get("CUSTOM_DOMAIN_RESOLVE")))


def parse_resolve(value: Any) -> dict[str, tuple[str, int]]:
    """CUSTOM_DOMAIN_RESOLVE: {"book.salon.test": "127.0.0.1:8081"} (a dict or its JSON); loopback addresses only."""
    if not value:
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    out = {}
    for host, target in dict(value).items():
        address, _, port = str(target).rpartition(":")
        if not address or not port.isdigit():
            raise ValueError(f"CUSTOM_DOMAIN_RESOLVE[{host!r}] must be ADDRESS:PORT, not {target!r}")
        if not ipaddress.ip_address(address.strip("[]")).is_loopback:
            raise ValueError(f"CUSTOM_DOMAIN_RESOLVE may map to loopback addresses (127.0.0.0/8) only, not {address}")
        out[str(host).lower()] = (address.strip("[]"), int(port))
    return out


# --------------------------------------------------------------------------- validation


def normalize_domain(raw: str | None, platform_host: str) -> str:
    """A lower-case host name from what an owner typed, or ValidationError saying what is wrong."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError("give a domain such as book.your-business.com", FIELD, code="invalid_domain")
    if "://" in text:
        raise ValidationError("give the host name only, without http:// or https://", FIELD, code="invalid_domain")
    if any(c in text for c in "/?#@\\"):
        raise ValidationError("give the host name only, without a path, query or user name", FIELD,
                              code="invalid_domain")
    if any(c.isspace() for c in text) or "\x00" in text:
        raise ValidationError("a domain has no spaces", FIELD, code="invalid_domain")
    bare = text.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        raise ValidationError("an IP address is not a domain: give a host name", FIELD, code="invalid_domain")
    if ":" in text:
        raise ValidationError("give the host name without a port (links use https on port 443)", FIELD,
                              code="invalid_domain")
    host = text.lower().rstrip(".")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValidationError(f"{text!r} is not a valid domain", FIELD, code="invalid_domain") from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValidationError(f"{text!r} is not a valid domain (letters, digits and hyphens, at least two labels)",
                              FIELD, code="invalid_domain")
    if labels[-1].isdigit():
        raise ValidationError("an IP address is not a domain: give a host name", FIELD, code="invalid_domain")
    if platform_host and (host == platform_host or host.endswith("." + platform_host)):
        raise ValidationError(f"{host} is the platform's own address; give your business's domain", FIELD,
                              code="invalid_domain")
    return host


def _taken_elsewhere(session: Session, tenant_id: int, domain: str) -> bool:
    return session.scalar(select(func.count()).select_from(Tenant).where(
        Tenant.custom_domain == domain, Tenant.custom_domain_verified_at.is_not(None), Tenant.id != tenant_id)) > 0


def _taken() -> Conflict:
    # Which business holds it is not said.
    return Conflict("domain_taken", "this domain is already in use by another business", FIELD)


# --------------------------------------------------------------------------- set, verify, remove


def set_domain(session: Session, tenant: Tenant, raw: str, settings: CheckSettings) -> Tenant:
    """Claim a domain for `tenant`: a fresh token, not verified until `mark_verified`. The same domain again keeps both."""
    domain = normalize_domain(raw, settings.platform_host)
    if domain == tenant.custom_domain and tenant.custom_domain_token:
        return tenant
    if _taken_elsewhere(session, tenant.id, domain):
        raise _taken()
    tenant.custom_domain = domain
    tenant.custom_domain_token = "upzento-" + secrets.token_urlsafe(24)
    tenant.custom_domain_verified_at = None
    session.flush()
    return tenant


def remove_domain(session: Session, tenant: Tenant) -> Tenant:
    """Forget the domain: links go back to PUBLIC_URL at once."""
    tenant.custom_domain = tenant.custom_domain_token = tenant.custom_domain_verified_at = None
    session.flush()
    return tenant


def verification_url(domain: str, settings: CheckSettings) -> str:
    return f"{settings.scheme}://{domain}{WELL_KNOWN_PATH}"


def check_published(domain: str, token: str, settings: CheckSettings) -> None:
    """Fetch the domain's well-known file and compare it with `token`; DomainNotVerified says why not.

    No database work: callers hold no transaction while the network answers.
    """
    url = verification_url(domain, settings)
    status, body = _fetch(domain, settings)
    if status != 200:
        raise DomainNotVerified(f"{url} answered HTTP {status}; publish the token there (HTTP 200, the token as "
                                "the whole content) and verify again")
    found = body.strip()
    if not hmac.compare_digest(found.encode(), token.encode()):
        # The content is not echoed: the fetch may have reached someone else's server.
        raise DomainNotVerified(f"{url} does not hold this business's token ({len(found)} characters found); "
                                "publish exactly the token shown and verify again")


def mark_verified(session: Session, tenant: Tenant, domain: str, token: str, now: dt.datetime) -> Tenant:
    """Record a successful check of (domain, token), if the business still claims them and nobody else verified first."""
    # Two businesses verifying one name at once: one waits for the other, then sees it taken.
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext("custom_domain:" + domain))))
    session.refresh(tenant, with_for_update=True)
    if tenant.custom_domain != domain or tenant.custom_domain_token != token:
        raise Conflict("domain_changed", "the domain or its token changed while it was checked; verify again", FIELD)
    if _taken_elsewhere(session, tenant.id, domain):
        raise _taken()
    if tenant.custom_domain_verified_at is None:
        tenant.custom_domain_verified_at = now
    session.flush()
    return tenant


# --------------------------------------------------------------------------- the fetch


def _addresses(domain: str, port: int, settings: CheckSettings) -> list[tuple[str, int]]:
    mapped = settings.resolve.get(domain)
    if mapped is not None:
        return [mapped]
    try:
        infos = socket.getaddrinfo(domain, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DomainNotVerified(f"{domain} does not resolve ({exc.strerror or exc}); check its DNS records") from None
    found = [(info[4][0], port) for info in infos]
    usable = [a for a in found if ipaddress.ip_address(a[0].split("%")[0]).is_global]
    if not usable:
        raise DomainNotVerified(f"{domain} resolves to private or local addresses only "
                                f"({', '.join(sorted({a for a, _ in found}))}); it must be reachable from the internet")
    return usable


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to `address` with Host: <domain> (the name is not looked up again)."""

    def __init__(self, domain: str, address: str, port: int, timeout: float):
        super().__init__(domain, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to `address`, with SNI and certificate checked for <domain>."""

    def __init__(self, domain: str, address: str, port: int, timeout: float):
        super().__init__(domain, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _fetch(domain: str, settings: CheckSettings) -> tuple[int, str]:
    port = 443 if settings.scheme == "https" else 80
    url = verification_url(domain, settings)
    last: str | None = None
    for address, target_port in _addresses(domain, port, settings):
        cls = _PinnedHTTPS if settings.scheme == "https" else _PinnedHTTP
        conn = cls(domain, address, target_port, settings.timeout)
        try:
            # No redirects followed: the file must be served by the domain itself.
            # Host without the port: a mapped test port stands in for the scheme's default one.
            conn.request("GET", WELL_KNOWN_PATH, headers={"Host": domain, "User-Agent": "Upzento-domain-check/1",
                                                          "Accept": "text/plain"})
            response = conn.getresponse()
            body = response.read(MAX_FILE_BYTES + 1)
            if len(body) > MAX_FILE_BYTES:
                raise DomainNotVerified(f"{url} is larger than {MAX_FILE_BYTES} bytes; it should hold the token only")
            return response.status, body.decode("utf-8", "replace")
        except ConnectionRefusedError:
            last = "connection refused"
        except (socket.timeout, TimeoutError):
            last = f"no answer within {settings.timeout:g} s"
        except ssl.SSLError as exc:
            last = f"TLS failed ({exc.reason or exc}); the domain needs a valid certificate"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
    raise DomainNotVerified(f"could not fetch {url}: {last}")


def status_of(tenant: Tenant) -> dict[str, Any]:
    """What the admin page and the CLI show: domain, token, verified time, where to publish."""
    return {
        "domain": tenant.custom_domain,
        "token": tenant.custom_domain_token,
        "verified_at": tenant.custom_domain_verified_at,
        "status": "none" if not tenant.custom_domain else ("verified" if tenant.custom_domain_verified_at else "pending"),
        "publish_at": f"https://{tenant.custom_domain}{WELL_KNOWN_PATH}" if tenant.custom_domain else None,
    }
