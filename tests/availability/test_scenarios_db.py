"""Every shared scenario, imported into a real tenant, answered by the HTTP API and by the CLI."""

from __future__ import annotations

import json

import pytest
from support import SCENARIOS, load_scenario


def _query_args(query: dict) -> dict:
    args = {"service": query["service"], "from": query["from"], "to": query["to"], "timezone": query["timezone"]}
    for key in ("location", "staff"):
        if query.get(key):
            args[key] = query[key]
    return args


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_through_http_api(path, client, make_tenant, pinned_now):
    scenario = load_scenario(path)
    slug = make_tenant(scenario["setup"])
    pinned_now(scenario["setup"]["now"])
    for query in scenario["queries"]:
        response = client.get(f"/api/v1/public/{slug}/availability", query_string=_query_args(query))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["slots"] == query["expect"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_through_cli(path, app, make_tenant):
    scenario = load_scenario(path)
    slug = make_tenant(scenario["setup"])
    runner = app.test_cli_runner()
    for query in scenario["queries"]:
        argv = ["slots", slug, "--now", scenario["setup"]["now"]]
        for key, value in _query_args(query).items():
            argv += [f"--{key}", value]
        result = runner.invoke(args=argv)
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["slots"] == query["expect"]
