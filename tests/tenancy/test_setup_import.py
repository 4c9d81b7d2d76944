"""Setup import/export through the CLI: validation with JSON paths, all-or-nothing, idempotent, round-trip."""

from __future__ import annotations

import copy
import json

import pytest
from support import SCENARIOS, load_scenario, minimal_setup, unique_slug
from sqlalchemy import text


def _run(app, *args, input_text=None):
    return app.test_cli_runner().invoke(args=list(args), input=input_text)


def _write(tmp_path, doc) -> str:
    path = tmp_path / "setup.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return str(path)


def _table_counts(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return {
            t: conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".{t}')).scalar()
            for t in ("location", "service", "staff", "staff_hours", "staff_break", "appointment", "customer", "busy_block")
        }


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_imports_reimports_and_round_trips(app, tmp_path, path):
    doc = load_scenario(path)["setup"]
    doc["tenant"]["slug"] = unique_slug("sc")
    file = _write(tmp_path, doc)
    first = _run(app, "tenants", "import", file, "--agency", "test-agency")
    assert first.exit_code == 0, first.output
    before = _table_counts(app, doc["tenant"]["slug"])
    again = _run(app, "tenants", "import", file)
    assert again.exit_code == 0, again.output
    assert _table_counts(app, doc["tenant"]["slug"]) == before
    exported = json.loads(_run(app, "tenants", "export", doc["tenant"]["slug"]).output)
    reimport = _run(app, "tenants", "import", _write(tmp_path, exported))
    assert reimport.exit_code == 0, reimport.output
    assert json.loads(_run(app, "tenants", "export", doc["tenant"]["slug"]).output) == exported
    assert _table_counts(app, doc["tenant"]["slug"]) == before


def _broken(mutate):
    doc = minimal_setup()
    doc["tenant"]["slug"] = unique_slug("bad")
    mutate(doc)
    return doc


BROKEN = {
    "schema: missing name": (lambda d: d["services"][0].pop("name"), "$.services[0]"),
    "schema: duration too short": (lambda d: d["services"][0].update(duration_min=2), "$.services[0].duration_min"),
    "unknown service key": (lambda d: d["staff"][0]["services"].append("ghost"), "$.staff[0].services[1]"),
    "staff at a location not listed": (
        lambda d: (d["locations"].append({"key": "other", "name": "O", "timezone": "Europe/Berlin"}),
                   d["staff"][0]["hours"].append({"location": "other", "weekday": "sat", "start": "09:00", "end": "10:00"})),
        "$.staff[0].hours[5].location",
    ),
    "hours outside the day": (lambda d: d["staff"][0]["hours"][0].update(end="25:00"), "$.staff[0].hours[0].end"),
    "end before start": (lambda d: d["staff"][0]["hours"][0].update(start="18:00"), "$.staff[0].hours[0]"),
    "unknown time zone": (lambda d: d["locations"][0].update(timezone="Mars/Base"), "$.locations[0].timezone"),
    "duplicate key": (lambda d: d["services"].append(dict(d["services"][0])), "$.services[1].key"),
    "appointment of unknown staff": (
        lambda d: d.setdefault("appointments", []).append({"service": "visit", "staff": "ghost", "start": "2027-01-11T09:00:00Z"}),
        "$.appointments[0].staff",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_exits_nonzero_with_the_path_and_writes_nothing(app, tmp_path, case):
    mutate, expected_path = BROKEN[case]
    doc = _broken(mutate)
    result = _run(app, "tenants", "import", _write(tmp_path, doc), "--agency", "test-agency")
    assert result.exit_code == 1
    assert expected_path in result.output, result.output
    listing = _run(app, "tenants", "list").output
    assert doc["tenant"]["slug"] not in listing


def test_not_json_is_reported(app, tmp_path):
    result = _run(app, "tenants", "import", _write(tmp_path, "{nope"), "--agency", "test-agency")
    assert result.exit_code == 1 and "not valid JSON" in result.output


def test_failed_reimport_leaves_the_existing_tenant_unchanged(app, tmp_path):
    doc = minimal_setup()
    doc["tenant"]["slug"] = unique_slug("keep")
    assert _run(app, "tenants", "import", _write(tmp_path, doc), "--agency", "test-agency").exit_code == 0
    before = _table_counts(app, doc["tenant"]["slug"])
    broken = copy.deepcopy(doc)
    broken["services"].append({"key": "x", "name": "X", "duration_min": 30})
    broken["appointments"] = [{"service": "visit", "staff": "ann", "start": "2027-01-11T09:00:00Z", "seats": 3}]
    result = _run(app, "tenants", "import", _write(tmp_path, broken))
    assert result.exit_code == 1 and "$.appointments[0].seats" in result.output
    assert _table_counts(app, doc["tenant"]["slug"]) == before


def test_tenant_cli_create_list_delete(app):
    slug = unique_slug("cli")
    created = _run(app, "tenants", "create", slug, "--agency", "test-agency", "--name", "CLI Co", "--timezone", "Europe/Paris")
    assert created.exit_code == 0, created.output
    assert slug in _run(app, "tenants", "list").output
    assert _run(app, "tenants", "create", slug, "--agency", "test-agency", "--name", "Again").exit_code == 1
    bad_zone = _run(app, "tenants", "create", unique_slug("z"), "--agency", "test-agency", "--name", "Z", "--timezone", "Nowhere")
    assert bad_zone.exit_code == 1 and "unknown time zone" in bad_zone.output
    assert _run(app, "tenants", "create", "Bad-Slug", "--agency", "test-agency", "--name", "B").exit_code == 1
    assert _run(app, "tenants", "delete", slug).exit_code == 1  # needs --confirm
    assert _run(app, "tenants", "delete", slug, "--confirm").exit_code == 0
    assert slug not in _run(app, "tenants", "list").output
    assert _run(app, "tenants", "migrate", "--all").exit_code == 0


def test_suspended_tenant_stops_taking_bookings(app, client):
    slug = unique_slug("susp")
    assert _run(app, "tenants", "create", slug, "--agency", "test-agency", "--name", "S").exit_code == 0
    assert _run(app, "tenants", "suspend", slug).exit_code == 0
    response = client.get(f"/api/v1/public/{slug}/services")
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "tenant_suspended"
    assert _run(app, "tenants", "activate", slug).exit_code == 0
    assert client.get(f"/api/v1/public/{slug}/services").status_code == 200
    assert _run(app, "tenants", "suspend", "no_such_one").exit_code == 1
