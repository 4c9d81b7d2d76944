"""A loopback webhook receiver that checks every delivery with the independent `standardwebhooks` package.

`received` keeps each verified delivery (webhook-id, payload); `rejected` the ones
whose signature did not verify. `answer_next(status, times)` scripts failures.
"""

from __future__ import annotations

import json
import threading

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from fakes.http_fake import HttpFake, Response


class WebhookReceiver(HttpFake):
    def __init__(self, secret: str | None = None, path: str = "/hook"):
        super().__init__()
        self.secret = secret
        self.path = path
        self.received: list[dict] = []
        self.rejected: list[str] = []
        self._lock = threading.Lock()
        self.route("POST", path, self._hook)

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def _hook(self, req, match):
        headers = {k: v for k, v in req.headers.items()}
        try:
            payload = Webhook(self.secret).verify(req.body, headers)
        except WebhookVerificationError as exc:
            with self._lock:
                self.rejected.append(str(exc))
            return Response.text(400, f"bad signature: {exc}")
        with self._lock:
            self.received.append({"id": req.headers["webhook-id"], "payload": payload,
                                  "signature": req.headers["webhook-signature"], "raw": req.body})
        return Response.json(200, {"ok": True})

    def ids(self) -> list[str]:
        with self._lock:
            return [r["id"] for r in self.received]

    def payloads(self) -> list[dict]:
        with self._lock:
            return [r["payload"] for r in self.received]


def dumps(value) -> bytes:
    return json.dumps(value).encode()
