"""The shared worked cases (copies in tests/data/scenarios/*.json) reproduced exactly."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from app.scheduling.engine import find_slots, find_slots_json, slot_to_json
from app.scheduling.model import SlotQuery
from app.scheduling.setup_file import setup_from_file
from support import SCENARIO_DIR, external_scenarios

SCENARIOS = SCENARIO_DIR


def _cases() -> list:
    """The cases kept in tests/data, plus those of an optional external folder (SCENARIOS_DIR)."""
    cases = []
    for prefix, paths in (("", sorted(SCENARIOS.glob("*.json"))), ("ext-", external_scenarios())):
        for path in paths:
            doc = json.loads(path.read_text())
            for i, query in enumerate(doc["queries"]):
                cases.append(pytest.param(doc, query, id=f"{prefix}{path.stem}-q{i + 1}"))
    return cases


@pytest.mark.parametrize(("doc", "query"), _cases())
def test_scenario_query_matches_expected_slots(doc, query):
    setup, now = setup_from_file(doc["setup"])
    q = SlotQuery(
        service=query["service"],
        date_from=date.fromisoformat(query["from"]),
        date_to=date.fromisoformat(query["to"]),
        timezone=query["timezone"],
        now=now,
        location=query.get("location"),
        staff=query.get("staff"),
    )
    group = setup.services[q.service].capacity > 1
    got = [slot_to_json(s, group) for s in find_slots(setup, q)]
    assert got == query["expect"]
    assert json.loads(find_slots_json(setup, q)) == {"slots": query["expect"]}
