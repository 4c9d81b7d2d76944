"""The webhook SSRF guard: every refused target of the issue, the pinned connection, no redirects,
the 64 KB response cap, and a delivery refused by the worker when the guard is on."""

from __future__ import annotations

import socket

import pytest

from fakes.http_fake import HttpFake, Response
from app.webhooks import sender

REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://10.0.0.5/hook",
    "http://172.16.1.1/hook",
    "http://192.168.1.10/hook",
    "http://100.100.100.200/",
    "http://[fe80::1]/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 wrapping 127.0.0.1
    "http://localhost/hook",  # a name resolving to loopback
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "http://user:pw@example.com/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_targets(url):
    with pytest.raises(sender.Refused):
        sender.resolve(url, allow_private=False)


def test_a_public_address_passes_and_is_pinned(monkeypatch):
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    target = sender.resolve("https://hooks.example.com/in?x=1", allow_private=False)
    assert (target.address, target.port, target.path, target.host) == ("93.184.216.34", 443, "/in?x=1",
                                                                       "hooks.example.com")
    assert calls == ["hooks.example.com"]


def test_a_name_with_one_private_answer_is_refused(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))])
    with pytest.raises(sender.Refused, match="10.1.2.3"):
        sender.resolve("http://rebind.example.com/", allow_private=False)


def test_the_connection_goes_to_the_resolved_address_not_a_second_lookup(monkeypatch):
    """DNS is asked once; the socket connects to that answer while Host names the original host."""
    with HttpFake() as fake:
        fake.route("POST", r"/hook", lambda req, m: Response.json(200, {"host": req.headers.get("host")}))
        answers = iter(["127.0.0.1", "10.9.9.9"])  # a rebinding resolver: second answer elsewhere
        real = socket.getaddrinfo
        names = []

        def resolver(host, port, *a, **k):
            if host != "hooks.test":
                return real(host, port, *a, **k)  # the pinned IP literal: no DNS
            names.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        client = sender.Sender(f"http://hooks.test:{fake.port}/hook", allow_private=True)
        for _ in range(2):
            result = client.post(b"{}", {})
            assert result.ok and b"hooks.test" in result.body
        client.close()
        assert len(fake.requests) == 2 and names == ["hooks.test"]


def test_redirects_are_not_followed():
    with HttpFake() as inner, HttpFake() as outer:
        inner.route("POST", r"/.*", lambda req, m: Response.json(200, {}))
        outer.route("POST", r"/hook", lambda req, m: Response(302, b"", {"Location": inner.base_url + "/steal"}))
        result = sender.Sender(outer.base_url + "/hook", allow_private=True).post(b"{}", {})
        assert not result.ok and result.status == 302 and "redirect" in result.error
        assert inner.requests == []


def test_only_64_kb_of_the_answer_is_read():
    with HttpFake() as fake:
        fake.route("POST", r"/hook", lambda req, m: Response(200, b"x" * (1024 * 1024), {}))
        client = sender.Sender(fake.base_url + "/hook", allow_private=True)
        result = client.post(b"{}", {})
        assert result.ok and len(result.body) == 64 * 1024
        assert client.post(b"{}", {}).ok  # the unread rest does not poison the next request


def test_a_slow_receiver_times_out():
    import time

    with HttpFake() as fake:
        fake.route("POST", r"/hook", lambda req, m: (time.sleep(1.5), Response(200))[1])
        result = sender.Sender(fake.base_url + "/hook", allow_private=True, timeout=0.5).post(b"{}", {})
        assert result.status is None and "timed out" in (result.error or "").lower()


def test_the_cli_refuses_a_loopback_url_when_the_guard_is_on(app, make_tenant, monkeypatch):
    monkeypatch.delenv("WEBHOOK_ALLOW_PRIVATE", raising=False)
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE", False)
    slug = make_tenant()
    result = app.test_cli_runner().invoke(args=["webhooks", "add", slug, "http://127.0.0.1:9/hook"])
    assert result.exit_code != 0 and "refused" in result.output
    assert "127.0.0.1" not in app.test_cli_runner().invoke(args=["webhooks", "list", slug]).output


def test_a_stored_loopback_endpoint_is_refused_at_delivery_when_the_guard_is_on(app, client, make_tenant, pinned_now,
                                                                                 integ, integ_workers):
    from fakes.webhook_receiver import WebhookReceiver
    from integ_helpers import book, relay, rows, wait_until

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as receiver:
        added = app.test_cli_runner().invoke(args=["webhooks", "add", slug, receiver.url])  # guard off here
        assert added.exit_code == 0, added.output
        integ["WEBHOOK_ALLOW_PRIVATE"] = "0"  # the workers run with the guard on
        book(client, slug)
        relay(app, slug)
        integ_workers.start(1)
        [row] = wait_until(lambda: [r for r in rows(app, slug, "webhook_delivery") if r["attempts"] >= 1], timeout=60)
        assert row["status"] in ("retry", "failed") and "refused" in row["last_error"]
        assert receiver.requests == []
