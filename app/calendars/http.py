"""A small JSON-over-HTTP helper shared by the Google and Graph clients (requests + a TokenSource)."""

from __future__ import annotations

import requests

from app.calendars.base import AuthFailed, Conflict, Gone, NotFound, ProviderError, parse_retry_after


class JsonApi:
    """Bearer-authenticated JSON calls; one refresh and retry on 401; errors as the sync's exceptions."""

    def __init__(self, base_url: str, tokens, timeout: float = 20, name: str = "provider"):
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.name = name
        self.http = requests.Session()
        self.requests = 0

    def call(self, method: str, path: str, *, params=None, json=None, headers=None, absolute: bool = False,
             ok=(200, 201, 202, 204)):
        url = path if absolute else self.base_url + path
        for attempt in (1, 2):
            self.requests += 1
            try:
                response = self.http.request(method, url, params=params, json=json, timeout=self.timeout,
                                             headers={"Authorization": f"Bearer {self.tokens.access_token()}",
                                                      "Accept": "application/json", **(headers or {})})
            except requests.RequestException as exc:
                raise ProviderError(f"{self.name} unreachable: {exc}", 0) from exc
            if response.status_code == 401 and attempt == 1:
                self.tokens.refresh()  # an access token revoked or expired early: one fresh try
                continue
            break
        status = response.status_code
        if status in ok:
            if status == 204 or not response.content:
                return {}
            return response.json()
        body = _body(response)
        message = f"{self.name} {method} {path.split('?')[0] if not absolute else '(link)'} answered {status}: {_reason(body)}"
        if status == 401:
            raise AuthFailed(message, 401, body=body)
        if status == 403 and _reason(body) in ("rateLimitExceeded", "userRateLimitExceeded"):
            raise ProviderError(message, 429, retry_after=parse_retry_after(response.headers.get("Retry-After")), body=body)
        if status == 404:
            raise NotFound(message, 404, body=body)
        if status == 409:
            raise Conflict(message, 409, body=body)
        if status == 410:
            raise Gone(message, 410, body=body)
        raise ProviderError(message, status, retry_after=parse_retry_after(response.headers.get("Retry-After")), body=body)


def _body(response):
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


def _reason(body) -> str:
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            errors = err.get("errors") or []
            if errors and isinstance(errors[0], dict) and errors[0].get("reason"):
                return errors[0]["reason"]
            return str(err.get("code") or err.get("message") or "")
        return str(err or "")
    return str(body)[:200]
