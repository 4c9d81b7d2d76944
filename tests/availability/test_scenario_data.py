"""The test data kept in the repository: the worked cases are valid setup files, the schema is the app's.

tests/data holds copies of the product's shared cases and setup schema so that a plain
clone runs every test. An external folder (SCENARIOS_DIR) is optional: when it names the
shared cases, the copies must not have drifted from them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from support import ROOT, SCENARIOS, SETUP_SCHEMA, external_scenarios


def test_the_repository_carries_the_cases_and_the_schema():
    assert len(SCENARIOS) >= 5 and SETUP_SCHEMA.is_file()


def test_the_apps_setup_schema_is_the_documented_one():
    app_copy = ROOT / "app" / "services" / "schemas" / "tenant-setup.schema.json"
    assert json.loads(app_copy.read_text()) == json.loads(SETUP_SCHEMA.read_text())


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_case_is_a_valid_setup_file(path):
    schema = json.loads(SETUP_SCHEMA.read_text())
    setup = json.loads(path.read_text())["setup"]
    jsonschema.validate(setup, schema)


def test_copies_match_the_external_folder_when_given():
    extra = external_scenarios()
    if not extra:
        pytest.skip("SCENARIOS_DIR not set (optional external folder of cases)")
    by_name = {p.name: p for p in SCENARIOS}
    for path in extra:
        if path.name in by_name:
            assert json.loads(path.read_text()) == json.loads(by_name[path.name].read_text()), path.name
    folder = Path(os.environ["SCENARIOS_DIR"])
    shared_schema = folder.parent / "tenant-setup.schema.json"
    if shared_schema.is_file():
        assert json.loads(shared_schema.read_text()) == json.loads(SETUP_SCHEMA.read_text())
