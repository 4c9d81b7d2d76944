import requests

from fakes.http_fake import HttpFake, Response


def test_routes_scripted_failures_and_log():
    fake = HttpFake()
    fake.route("GET", r"/things/(?P<id>\d+)", lambda req, m: Response.json(200, {"id": int(m["id"])}))
    with fake:
        fake.fail_next(503, "busy", headers={"Retry-After": "1"}, path=r"/things/\d+")

        first = requests.get(f"{fake.base_url}/things/1", timeout=5)
        second = requests.get(f"{fake.base_url}/things/2?full=1", timeout=5)
        missing = requests.get(f"{fake.base_url}/nothing", timeout=5)
        wrong_method = requests.delete(f"{fake.base_url}/things/2", timeout=5)

        assert (first.status_code, first.headers["Retry-After"]) == (503, "1")
        assert second.json() == {"id": 2}
        assert missing.status_code == 404
        assert wrong_method.status_code == 405
        log = fake.requests
        assert [r.status for r in log] == [503, 200, 404, 405]
        assert log[1].query == {"full": ["1"]}
